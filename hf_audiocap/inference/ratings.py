"""Summary of the human ratings saved by the app (`app.py --ratings DIR`, Gradio flagging CSVs).

python recipes/evaluate.py --ratings outputs/ratings
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from hf_audiocap.data.atomic import write_atomic


def load_ratings(ratings_dir: str | Path) -> list[dict]:
    """Rows of every flagging CSV in `ratings_dir` (`ratings.csv` and any `dataset*.csv`), oldest file first."""
    folder = Path(ratings_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"ratings folder {str(folder)!r} not found (rate captions in app.py first)")
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no ratings CSV in {str(folder)!r} (rate captions in app.py first)")
    rows = []
    for path in files:
        with open(path, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("flag"):
                    rows.append({**row, "_file": path.name})
    return rows


def summarize_ratings(ratings_dir: str | Path, max_corrections: int = 10) -> dict:
    """Counts of good / wrong per model, the share rated good, and some corrected captions."""
    rows = load_ratings(ratings_dir)
    per_model: dict[str, Counter] = {}
    corrections = []
    for row in rows:
        model = row.get("Model") or "?"
        per_model.setdefault(model, Counter())[row["flag"]] += 1
        if row.get("Corrected caption", "").strip():
            corrections.append(
                {
                    "audio": row.get("Audio", ""),
                    "caption": row.get("Caption", ""),
                    "corrected": row["Corrected caption"],
                }
            )
    total = Counter(row["flag"] for row in rows)
    rated = total["good"] + total["wrong"]
    return {
        "ratings": len(rows),
        "good": total["good"],
        "wrong": total["wrong"],
        "good_rate": round(total["good"] / rated, 4) if rated else None,
        "with_correction": len(corrections),
        "per_model": {m: {"good": c["good"], "wrong": c["wrong"]} for m, c in sorted(per_model.items())},
        "corrections": corrections[-max_corrections:],
    }


def print_ratings_summary(ratings_dir: str | Path, output_dir: str | Path | None = None) -> dict:
    """Prints the summary; writes `ratings_summary.json` into `output_dir` when given."""
    summary = summarize_ratings(ratings_dir)
    rate = "n/a" if summary["good_rate"] is None else f"{100 * summary['good_rate']:.1f}%"
    print(
        f"Ratings in {ratings_dir}: {summary['ratings']} ({summary['good']} good, {summary['wrong']} wrong; {rate} good)"
    )
    for model, counts in summary["per_model"].items():
        print(f"  {model}: {counts['good']} good, {counts['wrong']} wrong")
    if summary["corrections"]:
        print(f"Corrected captions ({summary['with_correction']} in all, latest shown):")
        for c in summary["corrections"]:
            print(f"  {Path(c['audio']).name}: {c['caption']!r} -> {c['corrected']!r}")
    if output_dir is not None:
        out = Path(output_dir) / "ratings_summary.json"
        write_atomic(out, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        print(f"Wrote {out}")
    return summary
