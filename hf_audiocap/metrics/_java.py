"""The one JVM of the process: PTB tokenization and METEOR, in-process through JPype.

pycocoevalcap spawns ``java`` for every ``PTBTokenizer.tokenize`` call and a long-lived ``java -jar meteor-1.5.jar
-stdio`` child per ``Meteor()``. Here a single JVM is started inside the Python process the first time a metric needs
it (JPype), with pycocoevalcap's own jars on the class path, and every later evaluation call reuses it:

* PTB: ``edu.stanford.nlp.process.PTBTokenizer.main`` is invoked in-process with the very arguments pycocoevalcap
  passes (``-preserveLines -lowerCase``), ``System.in`` / ``System.out`` redirected to byte buffers for the call. Same
  jar, same entry point, same options: the tokens are byte-identical to pycocoevalcap's.
* METEOR: one ``MeteorScorer`` built from the same arguments as pycocoevalcap's ``-l en -norm`` child; each segment is
  scored with ``getMeteorStats`` after parsing the ``SCORE ||| ref ||| ... ||| hyp`` line pycocoevalcap would have sent
  exactly as Meteor's stdio loop does (Java ``split("\\|\\|\\|")`` + ``trim``); the stats go through their text form and
  are aggregated as the ``EVAL`` command does, so segment and corpus scores are identical. No pipes, so no pipe
  deadlock however many segments.

The JVM cannot be restarted inside a process (a JPype/JNI limitation), so it lives until the interpreter exits; JPype
shuts it down at exit. A process forked after the JVM started (e.g. a DataLoader worker) cannot use it: that raises.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

# -Xrs: the JVM leaves SIGINT/SIGTERM/SIGHUP to Python (Ctrl-C and a kill behave as without Java);
# a JVM crash report goes to the temp folder, never into the user's working directory.
_JVM_OPTIONS = (
    "-Xmx2G",
    "-Djava.awt.headless=true",
    "-Xrs",
    f"-XX:ErrorFile={os.path.join(tempfile.gettempdir(), 'hf_audiocap_jvm_crash_%p.log')}",
)
_PTB_ARGS = ("-preserveLines", "-lowerCase")
_METEOR_ARGS = ("-", "-", "-stdio", "-l", "en", "-norm")
_JAVA_WS = "".join(chr(i) for i in range(33))  # what Java's String.trim() strips


def pycocoevalcap_dir() -> Path:
    """Folder of the installed pycocoevalcap (a namespace package: no ``__file__``)."""
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    return Path(ptb.__file__).resolve().parent.parent


def _jars() -> list[str]:
    base = pycocoevalcap_dir()
    jars = [base / "tokenizer" / "stanford-corenlp-3.4.1.jar", base / "meteor" / "meteor-1.5.jar"]
    for jar in jars:
        if not jar.is_file():
            raise FileNotFoundError(f"pycocoevalcap jar missing: '{jar}' (reinstall pycocoevalcap)")
    return [str(j) for j in jars]


class JavaBackend:
    """PTB tokenizer and METEOR scorer living in the process's JVM. Use :func:`get_backend`."""

    def __init__(self) -> None:
        try:
            import jpype
        except ImportError as e:  # pragma: no cover - install_requires has it
            raise RuntimeError("caption metrics need JPype1 (pip install JPype1)") from e
        self._jpype = jpype
        jars = _jars()
        if not jpype.isJVMStarted():
            try:
                jvm_path = jpype.getDefaultJVMPath()
            except Exception as e:
                raise RuntimeError(
                    f"no Java runtime found for the caption metrics (install a JRE, e.g. default-jre-headless): {e}"
                ) from e
            jpype.startJVM(jvm_path, *_JVM_OPTIONS, classpath=jars, convertStrings=False)
            self.started_here = True
        else:  # someone else started it: our jars must be on its class path
            self.started_here = False
        self.pid = os.getpid()
        try:
            self._ptb = jpype.JClass("edu.stanford.nlp.process.PTBTokenizer")
            self._meteor_main = jpype.JClass("Meteor")
        except Exception as e:
            raise RuntimeError(
                "a JVM was already running in this process without pycocoevalcap's jars on its class path; "
                f"start it with classpath={jars}"
            ) from e
        self._System = jpype.JClass("java.lang.System")
        self._BAIS = jpype.JClass("java.io.ByteArrayInputStream")
        self._BAOS = jpype.JClass("java.io.ByteArrayOutputStream")
        self._PrintStream = jpype.JClass("java.io.PrintStream")
        self._String = jpype.JString
        self._ArrayList = jpype.JClass("java.util.ArrayList")
        self._MeteorStats = jpype.JClass("edu.cmu.meteor.scorer.MeteorStats")
        self._scorer = None
        self._lock = threading.RLock()
        self.ptb_calls = 0
        self.meteor_calls = 0

    # ------------------------------------------------------------------ helpers
    def _check_process(self) -> None:
        if os.getpid() != self.pid:
            raise RuntimeError(
                f"the caption-metrics JVM was started in process {self.pid}; this forked child ({os.getpid()}) "
                "cannot use it: compute metrics in the main process"
            )

    # ------------------------------------------------------------------ PTB
    def ptb_lines(self, sentences: list[str]) -> list[str]:
        """Raw output lines of ``PTBTokenizer -preserveLines -lowerCase`` for one sentence per line.

        Sentences must not contain line breaks (the caller replaces them). Returns exactly ``len(sentences)`` lines.
        """
        self._check_process()
        data = "\n".join(sentences).encode("utf-8")
        jp = self._jpype
        with self._lock:
            System = self._System
            old_in, old_out, old_err = System.in_, System.out, System.err
            out, err = self._BAOS(), self._BAOS()
            try:
                System.setIn(self._BAIS(data))
                System.setOut(self._PrintStream(out, True, "UTF-8"))
                System.setErr(self._PrintStream(err, True, "UTF-8"))
                self._ptb.main(jp.JArray(self._String)(list(_PTB_ARGS)))
            finally:
                System.setIn(old_in)
                System.setOut(old_out)
                System.setErr(old_err)
            self.ptb_calls += 1
        lines = bytes(out.toByteArray()).decode("utf-8").split("\n")
        if len(lines) > len(sentences) and any(lines[len(sentences) :]):
            raise RuntimeError(f"PTB tokenizer returned {len(lines)} lines for {len(sentences)} sentences")
        if len(lines) < len(sentences):  # trailing empty sentences produce no line at end of input
            lines += [""] * (len(sentences) - len(lines))
        return lines[: len(sentences)]

    # ------------------------------------------------------------------ METEOR
    def _get_scorer(self):
        if self._scorer is None:
            jp = self._jpype
            props = self._meteor_main.createPropertiesFromArgs(jp.JArray(self._String)(list(_METEOR_ARGS)), 2)
            config = jp.JClass("edu.cmu.meteor.scorer.MeteorConfiguration")(props)
            self._scorer = jp.JClass("edu.cmu.meteor.scorer.MeteorScorer")(config)
        return self._scorer

    def meteor(self, hypotheses: list[str], references: list[list[str]]) -> tuple[float, list[float]]:
        """Corpus and segment METEOR 1.5 (``-l en -norm``), as pycocoevalcap's ``Meteor.compute_score``."""
        self._check_process()
        with self._lock:
            scorer = self._get_scorer()
            String, ArrayList, Stats = self._String, self._ArrayList, self._MeteorStats
            stats_text = []
            for hyp, refs in zip(hypotheses, references):
                # the line pycocoevalcap's Meteor._stat writes ...
                hyp = hyp.replace("|||", "").replace("  ", " ")
                line = " ||| ".join(("SCORE", " ||| ".join(refs), hyp))
                # ... parsed as Meteor.scoreStdio does: line.split("\\|\\|\\|"), trailing empty strings dropped, trim()
                parts = line.split("|||")
                while parts and parts[-1] == "":
                    parts.pop()
                if len(parts) < 3:  # pragma: no cover - cannot happen with >= 1 reference
                    raise RuntimeError(f"METEOR: malformed segment {line!r}")
                jrefs = ArrayList()
                for p in parts[1:-1]:
                    jrefs.add(String(p.strip(_JAVA_WS)))
                stats = scorer.getMeteorStats(String(parts[-1].strip(_JAVA_WS)), jrefs)
                stats_text.append(str(stats.toString()).strip())
            # EVAL ||| stats ||| stats ...: per-segment score, then the aggregate
            agg = Stats()
            scores = []
            for text in stats_text:
                stats = Stats(String(text.strip(_JAVA_WS)))
                scorer.computeMetrics(stats)
                scores.append(float(stats.score))
                agg.addStats(stats)
            scorer.computeMetrics(agg)
            self.meteor_calls += 1
            return float(agg.score), scores


_BACKEND: JavaBackend | None = None
_BACKEND_LOCK = threading.Lock()


def get_backend() -> JavaBackend:
    """The process's Java backend, starting the JVM on first use (thread-safe)."""
    global _BACKEND
    if _BACKEND is None:
        with _BACKEND_LOCK:
            if _BACKEND is None:
                _BACKEND = JavaBackend()
    return _BACKEND
