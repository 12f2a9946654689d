"""Benchmark: does a model trained on several corpora with styles write each corpus's style when asked for it?

Run: .venv/bin/python benchmarks/mixture_styles.py --model outputs/synthcaps-realsounds-mixture \
         --corpus synthcaps=data/synthcaps --corpus realsounds=data/realsounds [--max_clips 200]

For each corpus's test clips (loaded as recipes/evaluate.py loads them; a corpus name is also its loader and its
style) and each of the model's styles, captions every clip in that style and prints one JSON object: the captions'
mean length in words against the corpus's test references', the relative difference, and the vocabulary overlap
(the share of the distinct words the captions use that the corpus's training references use too), so a reader sees
whether the style, not the audio alone, sets the length and the words.
"""

from __future__ import annotations

import argparse
import json
import re
from argparse import Namespace

_WORD = re.compile(r"[a-z']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="saved model folder trained with styles")
    p.add_argument("--corpus", action="append", required=True, metavar="NAME=PATH", help="a corpus and its folder")
    p.add_argument("--split", default="test")
    p.add_argument("--max_clips", type=int, default=None)
    p.add_argument("--batch_size", type=int, default=16)
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    from hf_audiocap.metrics.report import load_captioner_for, load_split

    captioner = load_captioner_for(
        Namespace(
            model=args.model, trust_remote_code=False, batch_size=args.batch_size, num_beams=None, max_length=None
        )
    )
    results = {}
    for spec in args.corpus:
        name, path = spec.split("=", 1)

        def split(which, limit, name=name, path=path):
            return load_split(Namespace(dataset=name, dataset_path=path, audio_dir=None, max_duration=60.0,
                                        split=which, max_clips=limit))  # fmt: skip

        clips, train = split(args.split, args.max_clips), split("train", None)
        vocabulary = {w for refs in train["captions"] for r in refs for w in words(r)}
        refs = [r for rs in clips["captions"] for r in rs]
        ref_length = sum(len(words(r)) for r in refs) / len(refs)
        for style in captioner.styles:
            captions = captioner.caption_sources(clips["audio"], style=style)
            used = {w for c in captions for w in words(c)}
            length = sum(len(words(c)) for c in captions) / len(captions)
            results[f"{name} clips, style {style}"] = {
                "mean_words": round(length, 2),
                "references_mean_words": round(ref_length, 2),
                "length_difference": round(length / ref_length - 1, 3),
                "distinct_words": len(used),
                "in_corpus_vocabulary": round(len(used & vocabulary) / max(len(used), 1), 3),
                "example": captions[0],
            }
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
