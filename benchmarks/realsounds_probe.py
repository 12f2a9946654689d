"""How far do the real-sounds recordings' own features go? A linear probe per recording, on the corpus's split.

Each recording of data/realsounds (alone, no scene, no augmentation) becomes one vector: the mean and standard deviation
over time of its log-mel bands and MFCCs, or the mean over its real frames of a frozen Whisper-base encoder layer (the
last, or each one with ``--whisper-layers all``).
A logistic regression trained on the training recordings (then on training + validation recordings) names the class
of each held-out test recording: the accuracy a captioner's ``single_class_accuracy`` is to beat, on the same 35
recordings; and, where the folder has the independent split (``prepare realsounds --independent``), of each of its
recordings from other packages.

    python benchmarks/realsounds_probe.py [--root data/realsounds] [--whisper data/whisper-base] [--whisper-layers all]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import librosa
import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hf_audiocap.data.audio import load_audio
from hf_audiocap.data.realsounds.generate import INDEPENDENT_SPLIT

SR = 16000
SECONDS = 10.0  # as much of a recording as one scene uses


def _recordings(root: Path) -> list[tuple[str, str, Path]]:
    """(class, split, file) of every recording; the independent split's too where the folder has it."""
    info = json.loads((root / "realsounds_info.json").read_text())
    splits = [(cls, split, ids) for cls, by_split in info["classes"].items() for split, ids in by_split.items()]
    splits += [(cls, INDEPENDENT_SPLIT, ids) for cls, ids in info.get(INDEPENDENT_SPLIT, {}).items()]
    return [(cls, split, root / "recordings" / cls / f"{rid}.wav") for cls, split, ids in splits for rid in ids]


def mel_stats(x: np.ndarray) -> np.ndarray:
    mel = librosa.power_to_db(librosa.feature.melspectrogram(y=x, sr=SR, n_fft=1024, hop_length=320, n_mels=64))
    mfcc = librosa.feature.mfcc(S=mel, n_mfcc=20)
    return np.concatenate([mel.mean(1), mel.std(1), mfcc.mean(1), mfcc.std(1)])


def whisper_embedder(folder: str):
    """x -> one mean vector per encoder layer (index 0: the embeddings; the last: the final, normalised layer)."""
    from transformers import WhisperFeatureExtractor, WhisperModel

    encoder = WhisperModel.from_pretrained(folder).encoder.eval()
    extractor = WhisperFeatureExtractor.from_pretrained(folder)

    @torch.no_grad()
    def embed(x: np.ndarray) -> list[np.ndarray]:
        feats = extractor(x, sampling_rate=SR, return_tensors="pt").input_features
        frames = max(1, int(np.ceil(len(x) / SR * 50)))  # 50 encoder frames per second; the rest is padding
        states = encoder(feats, output_hidden_states=True).hidden_states
        return [h[0, :frames].mean(0).numpy() for h in states]

    return embed


def probe(X: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    """(accuracy, macro accuracy over classes) on the test rows."""
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=5000)).fit(X[train], y[train])
    hit = clf.predict(X[test]) == y[test]
    per_class = [hit[y[test] == c].mean() for c in np.unique(y[test])]
    return float(hit.mean()), float(np.mean(per_class))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/realsounds")
    parser.add_argument("--whisper", default="data/whisper-base", help="a transformers Whisper folder ('' to skip)")
    parser.add_argument(
        "--whisper-layers", default="last", choices=["last", "all"], help="probe the last layer or each"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    recs = _recordings(Path(args.root))
    audio = [load_audio(str(path), SR)[: int(SECONDS * SR)] for _, _, path in recs]
    y = np.array([cls for cls, _, _ in recs])
    split = np.array([s for _, s, _ in recs])
    features = {"log-mel + MFCC statistics": np.stack([mel_stats(x) for x in audio])}
    if args.whisper:
        embed = whisper_embedder(args.whisper)
        layers = np.stack([embed(x) for x in audio], axis=1)  # (layers, recordings, dim)
        last = len(layers) - 1
        for i in range(last + 1) if args.whisper_layers == "all" else [last]:
            name = "last layer" if i == last else ("embeddings" if i == 0 else f"layer {i}")
            features[f"frozen Whisper-base, {name}, mean"] = layers[i]
    tests = {"test": split == "test", INDEPENDENT_SPLIT: split == INDEPENDENT_SPLIT}
    print(
        f"{len(recs)} recordings, {len(set(y))} classes; tested on each alone: {tests['test'].sum()} test recordings, "
        f"{tests[INDEPENDENT_SPLIT].sum()} of the independent split (other packages)\n"
    )
    print("| features | trained on | tested on | accuracy | macro accuracy |\n|---|---|---|---:|---:|")
    corpus = ("train", split == "train"), ("train + validation", np.isin(split, ["train", "validation"]))
    for name, X in features.items():
        for tested, test in tests.items():
            for label, train in corpus + ((("all corpus", np.isin(split, ["train", "validation", "test"])),)
                                          if tested == INDEPENDENT_SPLIT else ()):  # fmt: skip
                if test.any():
                    acc, macro = probe(X, y, train, test)
                    print(f"| {name} | {label} recordings ({train.sum()}) | {tested} ({test.sum()}) | {acc:.3f} | "
                          f"{macro:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
