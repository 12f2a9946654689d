"""SPICE 1.0 in a JVM of its own: ``python -m hf_audiocap.metrics._spice_worker INPUT OUTPUT --classpath ...``.

Runs what ``SpiceScorer.scoreBatch`` (``java -jar spice-1.0.jar INPUT -out OUTPUT``) runs, through JPype and the same
classes: ``SpiceParser`` parses the reference captions (chunked per clip) and the candidates into scene graphs,
``SpiceStats.score`` scores each clip, and ``SpiceStats.toJSONString`` gives the per-clip results. The jar's own
``main`` cannot run on Java 15 or newer: it pretty-prints its output through the JavaScript engine (Nashorn), which
those JVMs no longer ship, so ``getEngineByName("JavaScript")`` is null; here the JSON is written as is (same numbers).

Not :mod:`hf_audiocap.metrics._java`'s in-process JVM: SPICE needs CoreNLP 3.6.0, which cannot share a class path
with the tokenizer's CoreNLP 3.4.1, and a process has one JVM.

INPUT: ``[{"image_id": int, "test": str, "refs": [str, ...]}, ...]`` (pycocoevalcap's file). Exit status 0 and
OUTPUT written, or non-zero with the reason as the last line of stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

# SPICE's reference-parse cache is LMDB (lmdbjni) with values serialised by FST 2.47, which reflects into these JDK
# packages; Java 16+ refuses that unless they are opened to the class path (InaccessibleObjectException otherwise).
ADD_OPENS = tuple(
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.lang",
        "java.lang.reflect",
        "java.util",
        "java.util.concurrent",
        "java.math",
        "java.net",
        "java.text",
        "java.io",
        "java.nio",
    )
) + ("--add-opens=java.sql/java.sql=ALL-UNNAMED",)


def jvm_options(max_memory: str) -> list[str]:
    # IgnoreUnrecognizedVMOptions: Java 8 does not know --add-opens (nor needs it)
    return [f"-Xmx{max_memory}", "-Djava.awt.headless=true", "-XX:+IgnoreUnrecognizedVMOptions", *ADD_OPENS]


def _cache_usable(jpype, cache: str) -> bool:
    """Whether SPICE's LMDB cache opens here (its native library exists for this platform): a write and a read."""
    try:
        os.makedirs(cache, exist_ok=True)
        db = jpype.JClass("edu.anu.spice.LmdbTupleDB")(cache)
        ArrayList, HashMap = jpype.JClass("java.util.ArrayList"), jpype.JClass("java.util.HashMap")
        probe, tuples = HashMap(), ArrayList()
        tuples.add(ArrayList())
        probe.put("hf_audiocap cache probe", tuples)
        db.putTransaction(probe)
        keys = ArrayList()
        keys.add("hf_audiocap cache probe")
        return int(db.getTransaction(keys).size()) == 1
    except Exception as err:  # noqa: BLE001 - any failure: score without the cache
        print(f"SPICE cache disabled ({type(err).__name__}: {err})".splitlines()[0], file=sys.stderr)
        return False


def run(input_path: str, output_path: str, classpath: list[str], cache: str | None, threads: int, max_memory: str):
    import jpype

    jpype.startJVM(jpype.getDefaultJVMPath(), *jvm_options(max_memory), classpath=classpath, convertStrings=False)
    with open(input_path, encoding="utf-8") as f:
        items = json.load(f)
    ArrayList, HashMap = jpype.JClass("java.util.ArrayList"), jpype.JClass("java.util.HashMap")
    Integer, Long = jpype.JClass("java.lang.Integer"), jpype.JClass("java.lang.Long")
    tests, refs, chunks = ArrayList(), ArrayList(), ArrayList()
    for item in items:
        tests.add(jpype.JString(item["test"]))
        for ref in item["refs"]:
            refs.add(jpype.JString(ref))
        chunks.add(Integer.valueOf(len(item["refs"])))
    if cache is not None and not _cache_usable(jpype, cache):
        cache = None
    # SpiceArguments' defaults: METEOR synonym matching on, no per-caption tuples in the output
    parser = jpype.JClass("edu.anu.spice.SpiceParser")(cache, threads, True)
    ref_graphs = parser.parseCaptions(refs, chunks)
    test_graphs = parser.parseCaptions(tests)
    stats = jpype.JClass("edu.anu.spice.SpiceStats")(HashMap(), False)
    for i, item in enumerate(items):
        stats.score(Long.valueOf(int(item["image_id"])), test_graphs.get(i), ref_graphs.get(i), True)
    text = str(stats.toJSONString())
    tmp = output_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, output_path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--classpath", required=True, help="jars joined by os.pathsep")
    p.add_argument("--cache", default=None, help="folder of SPICE's LMDB cache of parses (none: no cache)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--max_memory", default="8G")
    args = p.parse_args(argv)
    try:
        run(args.input, args.output, args.classpath.split(os.pathsep), args.cache, args.threads, args.max_memory)
    except Exception as err:  # noqa: BLE001 - the parent reports the last line
        import traceback

        traceback.print_exc()
        java_trace = getattr(err, "stacktrace", None)
        if callable(java_trace):
            print(java_trace(), file=sys.stderr)
        print(f"SPICE failed: {type(err).__name__}: {err}".splitlines()[0], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
