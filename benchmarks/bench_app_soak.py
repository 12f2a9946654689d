"""Soak: app.py under 32 concurrent clients on loopback for a bounded time, good and hostile files mixed.

The app runs as its own process (`python app.py`, as a user starts it) with its working folder, HOME, Gradio temp
folder and ratings folder inside one fresh root, so every file it writes can be found afterwards. 32 client threads
(each its own gradio_client.Client) send `/caption` requests back to back until `--duration` seconds have passed:
about 70 % good clips (SynthCaps test clips and the corpus' 1/6-channel, 8/192 kHz files), the rest hostile: every bad
file of tests/hostile_corpus.py (zero bytes, truncated, text renamed .wav, random bytes, NaN/Inf, 0 samples, 2 hours),
an upload over the size limit, and a raw HTTP request naming a server path (/etc/passwd) instead of an upload.

Reported: requests, outcomes (good captioned, bad rejected with the expected one-line reason, anything else is a
failure), p50/p95 latency of good requests, the server's RSS (VmRSS from /proc; peak VmHWM): idle after a warm-up
(`--warmup` s of the same load), every 5 s under load, and idle after the run (each idle reading 12 s after the load
stops, past app.py's periodic malloc_trim), and where the server wrote files.

Model: outputs/synthcaps-demo when present, else the random default AudioCapConfig() of bench_inference.py (a random
model rarely stops before max_length: a pessimistic load).

    flock /tmp/bench.lock .venv/bin/python benchmarks/bench_app_soak.py [--clients 32] [--duration 120]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

APP_MAX_DURATION_S = 120.0  # app.py's default
BAD_SHARE = 0.3
IDLE_S = 12.0  # idle time before an RSS reading, longer than app.py's malloc_trim period


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM, RssAnon, RssFile (MB) and Threads of a process, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
        elif key == "Threads":
            fields[key] = int(value)
    return fields


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    status = proc_status(pid)
    return status["VmRSS"], status["VmHWM"]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def wait_for_server(url: str, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app.py exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}gradio_api/info", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise TimeoutError("app.py did not start")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--duration", type=float, default=120.0, help="seconds of measured load after the warm-up")
    p.add_argument("--warmup", type=float, default=30.0, help="seconds of the same load before the baseline RSS")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat the measured load this many times (each --duration s), reading the idle RSS after each: a "
        "cache filling up to its cap shows as growth that stops; a leak grows by the same amount every round",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--server-env", action="append", default=[], metavar="K=V", help="extra environment of app.py")
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from bench_inference import SYNTHCAPS, model_folder
    from gradio_client import Client, handle_file
    from hostile_corpus import AUDIO_CASES, BAD_AUDIO, GOOD_AUDIO, write_audio_corpus, write_tone

    root = Path(tempfile.mkdtemp(prefix="hf_audiocap_soak_"))
    try:
        model, which = model_folder(root / "model_tmp")
        corpus = write_audio_corpus(root / "inputs" / "corpus")
        too_big = write_tone(root / "inputs" / "too_big_70s_48k.wav", 70.0, 48000)  # 6.7 MB > the 5mb limit below
        good = [str(c) for c in sorted((SYNTHCAPS / "test").glob("*.wav"))[:16]] + [str(corpus[k]) for k in GOOD_AUDIO]
        bad = {k: (str(corpus[k]), AUDIO_CASES[k].error) for k in [*BAD_AUDIO, "two_hours"]}
        bad["too_big"] = (str(too_big), ("413", "too large", "exceed"))
        bad["server_path"] = ("/etc/passwd", "not uploaded by a user")

        server_root = root / "server"
        for d in ("cwd", "home", "gradio_tmp", "ratings"):
            (server_root / d).mkdir(parents=True)
        from audiocap_tiny import free_port

        port = free_port()
        env = {
            **os.environ,
            "HOME": str(server_root / "home"),
            "GRADIO_TEMP_DIR": str(server_root / "gradio_tmp"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": str(REPO),
            **dict(kv.split("=", 1) for kv in args.server_env),
        }
        before_files = tree(server_root)
        log = open(root / "server.log", "w")
        server = subprocess.Popen(
            [sys.executable, str(REPO / "app.py"), "--model", str(model), "--port", str(port)]
            + ["--ratings", str(server_root / "ratings"), "--max-file-size", "5mb"],
            cwd=server_root / "cwd",
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}/"
        try:
            wait_for_server(url, server)
            rss_start = rss_mb(server.pid)
            clients = [Client(url, verbose=False) for _ in range(args.clients)]

            records: list[dict] = []
            lock = threading.Lock()

            def one(client: Client, rng: random.Random, sink: list) -> None:
                import httpx

                if rng.random() < BAD_SHARE:
                    kind = rng.choice(sorted(bad))
                    path, expected = bad[kind]
                else:
                    kind, path, expected = "good", rng.choice(good), None
                t = time.perf_counter()
                try:
                    if kind == "server_path":
                        payload = {"path": path, "meta": {"_type": "gradio.FileData"}, "orig_name": "x.wav"}
                        r = httpx.post(f"{url}gradio_api/call/caption", json={"data": [payload, 1, 30, 1.0, 0]})
                        text = httpx.get(f"{url}gradio_api/call/caption/{r.json()['event_id']}", timeout=300).text
                        caption, error = ("", text) if "event: error" in text else (text, "")
                    else:
                        caption, error = client.predict(handle_file(path), api_name="/caption")
                except Exception as err:  # noqa: BLE001 - an upload refused by the server arrives as an exception
                    caption, error = "", f"{type(err).__name__}: {err}"
                dt = time.perf_counter() - t
                if expected is None:
                    ok = bool(caption) and not error
                elif isinstance(expected, tuple):  # refused by Gradio before the app sees it
                    ok = not caption and any(e in error.lower() for e in expected)
                elif kind == "server_path":  # an error event from Gradio's own check
                    ok = not caption and expected in error
                else:  # the app's one-line reason
                    ok = not caption and expected in error and "\n" not in error.strip()
                with lock:
                    sink.append({"kind": kind, "ok": ok, "latency": dt, "error": error[:300]})

            def run_phase(seconds: float, seed: int, sink: list, sample_every: float = 5.0) -> list:
                """All clients send the mix back to back for `seconds`; RSS sampled every `sample_every` s."""
                deadline = time.time() + seconds

                def loop(i: int) -> None:
                    rng = random.Random(seed * 1000 + i)
                    while time.time() < deadline:
                        one(clients[i], rng, sink)

                threads = [threading.Thread(target=loop, args=(i,)) for i in range(args.clients)]
                t0, samples = time.time(), []
                for th in threads:
                    th.start()
                while any(th.is_alive() for th in threads):
                    time.sleep(sample_every)
                    status = proc_status(server.pid)
                    samples.append(
                        (
                            round(time.time() - t0, 1),
                            status["VmRSS"],
                            status["RssAnon"],
                            status["RssFile"],
                            status["Threads"],
                        )
                    )
                for th in threads:
                    th.join()
                return samples

            # warm-up: the same mix (new code paths, worker threads, allocator pools), then the baseline RSS
            warmup_records: list[dict] = []
            run_phase(args.warmup, args.seed + 1, warmup_records)
            time.sleep(IDLE_S)  # idle RSS: after the app's periodic malloc_trim (every 10 s)
            rss_after_warmup = rss_mb(server.pid)
            status_warm = proc_status(server.pid)
            load_before = os.getloadavg()
            t0, samples, idle_after_rounds = time.time(), [], []
            for round_index in range(args.rounds):
                samples += run_phase(args.duration, args.seed + 7919 * round_index, records)
                time.sleep(IDLE_S)
                idle_after_rounds.append(rss_mb(server.pid)[0])
            wall = time.time() - t0 - IDLE_S * args.rounds
            rss_end = rss_mb(server.pid)
            status_end = proc_status(server.pid)
            alive = server.poll() is None
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
            log.close()

        written = sorted(tree(server_root) - before_files)
        outside = [f for f in written if not f.startswith(("gradio_tmp/", "ratings/"))]
        good_records = [r for r in records if r["kind"] == "good"]
        latencies = [r["latency"] for r in good_records]
        by_kind = {}
        for r in records:
            k = by_kind.setdefault(r["kind"], {"requests": 0, "as_expected": 0})
            k["requests"] += 1
            k["as_expected"] += r["ok"]
        failures = [r for r in records if not r["ok"]]
        out = {
            "model": which,
            "server_env": args.server_env,
            "clients": args.clients,
            "warmup_s": args.warmup,
            "warmup_requests": len(warmup_records),
            "warmup_as_expected": sum(r["ok"] for r in warmup_records),
            "rounds": args.rounds,
            "duration_s": round(wall, 1),
            "requests": len(records),
            "good": {"requests": len(good_records), "captioned": sum(r["ok"] for r in good_records)},
            "bad": {
                "requests": len(records) - len(good_records),
                "rejected_as_expected": sum(r["ok"] for r in records if r["kind"] != "good"),
            },
            "by_kind": by_kind,
            "failures": failures[:5],
            "latency_good_s": {
                "p50": round(float(np.percentile(latencies, 50)), 2) if latencies else None,
                "p95": round(float(np.percentile(latencies, 95)), 2) if latencies else None,
                "mean": round(statistics.mean(latencies), 2) if latencies else None,
            },
            "throughput_req_per_s": round(len(records) / wall, 2),
            "server_rss_mb": {
                "after_start": rss_start[0],
                "after_warmup": rss_after_warmup[0],
                "end": rss_end[0],
                "growth_warmup_to_end": round(rss_end[0] - rss_after_warmup[0], 1),
                "idle_after_each_round": idle_after_rounds,
                "under_load_median_first_quarter": float(
                    np.median([r[1] for r in samples[: max(1, len(samples) // 4)]])
                ),
                "under_load_median_last_quarter": float(
                    np.median([r[1] for r in samples[-max(1, len(samples) // 4) :]])
                ),
                "peak_hwm": rss_end[1],
                "status_idle_after_warmup": status_warm,
                "status_idle_at_end": status_end,
                "samples_every_5s (t, VmRSS, RssAnon, RssFile, Threads)": samples,
            },
            "server_alive_at_end": alive,
            "files_written_outside_temp_and_ratings": outside,
            "files_written_in_gradio_tmp": sum(f.startswith("gradio_tmp/") for f in written),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_count": os.cpu_count(),
        }
        print(json.dumps(out, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
