"""Benchmark: SynthCaps generation speed (2000 train clips + small validation/test, default 2 workers).

Run: flock /tmp/bench.lock .venv/bin/python benchmarks/bench_synthcaps.py [--num-train 2000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from hf_audiocap.data.synthcaps import default_workers, generate_synthcaps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-train", type=int, default=2000)
    parser.add_argument("--num-validation", type=int, default=50)
    parser.add_argument("--num-test", type=int, default=50)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    total = args.num_train + args.num_validation + args.num_test
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        out = generate_synthcaps(
            Path(tmp) / "synthcaps",
            seed=args.seed,
            num_train=args.num_train,
            num_validation=args.num_validation,
            num_test=args.num_test,
            workers=args.workers,
        )
        seconds = time.perf_counter() - start
        audio_s = sum(p.stat().st_size - 44 for p in out.rglob("*.wav")) / 2 / 16000
    result = {
        "benchmark": "synthcaps_generation",
        "clips": total,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "seconds": round(seconds, 2),
        "clips_per_s": round(total / seconds, 1),
        "audio_hours": round(audio_s / 3600, 2),
        "realtime_factor": round(audio_s / seconds, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
