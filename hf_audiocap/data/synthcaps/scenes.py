"""Scene sampling of SynthCaps: source combinations per split, then each clip's roles, attributes and timeline."""

from __future__ import annotations

import itertools

import numpy as np

from hf_audiocap.data.synthcaps.bank import SYNTH_BANK, SourceBank
from hf_audiocap.data.synthcaps.catalogue import SOURCE_NAMES

MIN_DURATION = 3.0
MAX_DURATION = 10.0

# held-out pairs of source types; triples containing one of them are held out too
_HELD_OUT_PAIRS_PER_SPLIT = 8


def combination_split(seed: int) -> dict[str, set[frozenset[str]]]:
    """Seed-chosen held-out source pairs for validation and test (disjoint, each source kept in training pairs)."""
    pairs = [frozenset(p) for p in itertools.combinations(SOURCE_NAMES, 2)]
    for attempt in range(100):
        rng = np.random.default_rng([seed, 7919, attempt])
        order = rng.permutation(len(pairs))
        val = {pairs[i] for i in order[:_HELD_OUT_PAIRS_PER_SPLIT]}
        test = {pairs[i] for i in order[_HELD_OUT_PAIRS_PER_SPLIT : 2 * _HELD_OUT_PAIRS_PER_SPLIT]}
        held = val | test
        if all(sum(1 for p in pairs if s in p and p not in held) >= 8 for s in SOURCE_NAMES):
            return {"validation": val, "test": test}
    raise RuntimeError("cannot choose held-out combinations")  # pragma: no cover


def split_combinations(seed: int) -> dict[str, list[tuple[str, ...]]]:
    """All source combinations (sorted tuples) allowed in each split; val/test ones never occur in train."""
    held = combination_split(seed)
    out: dict[str, list[tuple[str, ...]]] = {"train": [(s,) for s in SOURCE_NAMES], "validation": [], "test": []}
    for size in (2, 3):
        for combo in itertools.combinations(SOURCE_NAMES, size):
            sub = {frozenset(p) for p in itertools.combinations(combo, 2)}
            in_val, in_test = bool(sub & held["validation"]), bool(sub & held["test"])
            if not in_val and not in_test:
                out["train"].append(combo)
            elif in_val and not in_test:
                out["validation"].append(combo)
            elif in_test and not in_val:
                out["test"].append(combo)
    return out


def _combos_by_size(seed: int) -> dict[str, dict[int, list[tuple[str, ...]]]]:
    out = {}
    for split, combos in split_combinations(seed).items():
        by_size: dict[int, list[tuple[str, ...]]] = {}
        for c in combos:
            by_size.setdefault(len(c), []).append(c)
        out[split] = by_size
    return out


def _pick_combo(rng: np.random.Generator, combos: dict[int, list[tuple[str, ...]]], split: str) -> tuple[str, ...]:
    sizes = (1, 2, 3) if split == "train" else (2, 3)
    probs = (0.3, 0.4, 0.3) if split == "train" else (0.55, 0.45)
    size = int(rng.choice(sizes, p=probs))
    options = combos[size]
    return options[int(rng.integers(len(options)))]


def _sample_attributes(rng: np.random.Generator, spec, p_salient: float, role: str) -> dict:
    attrs: dict = {"count": None, "pitch": None, "tempo": None, "loudness": "normal"}
    if spec.kind == "discrete" and spec.countable:
        attrs["count"] = int(rng.integers(1, 4))
    if role == "background":
        attrs["loudness"] = "quiet"
        if spec.pitched:
            attrs["pitch"] = "medium"
        return attrs
    if spec.pitched:
        attrs["pitch"] = str(rng.choice(["high", "low"])) if rng.random() < p_salient else "medium"
    if spec.kind == "repetitive":
        attrs["tempo"] = str(rng.choice(["fast", "slow"])) if rng.random() < p_salient else "medium"
    if rng.random() < p_salient:
        options = ["loud", "quiet"] if spec.kind == "discrete" else ["loud", "quiet", "getting louder", "fading"]
        attrs["loudness"] = str(rng.choice(options))
    return attrs


def _plan_scene(rng: np.random.Generator, combo: tuple[str, ...], bank: SourceBank = SYNTH_BANK) -> dict:
    """Choose roles, relation, attributes and the timeline of a clip with the sources of ``combo`` (of ``bank``)."""
    sources, min_window = bank.sources, bank.min_window
    names = [str(x) for x in rng.permutation(list(combo))]
    k = len(names)
    continuous = [s for s in names if sources[s].kind == "continuous"]
    non_discrete = [s for s in names if sources[s].kind != "discrete"]
    structures = []
    if k == 1:
        structures = [("single", None)]
    else:
        structures.append(("then", None))
        if non_discrete:
            structures.append(("while", None))
        for bg in continuous:
            if k == 2 or any(s != bg for s in names):
                structures.append(("then" if k == 3 else "background", bg))
                if k == 3 and any(sources[s].kind != "discrete" for s in names if s != bg):
                    structures.append(("while", bg))
    relation, background = structures[int(rng.integers(len(structures)))]
    fg = [s for s in names if s != background]
    p_salient = {1: 0.6, 2: 0.45, 3: 0.3}[k]
    attrs = {
        s: _sample_attributes(rng, sources[s], p_salient, "background" if s == background else "foreground")
        for s in names
    }
    needs = {s: min_window(s, **{a: attrs[s][a] for a in ("count", "tempo", "loudness")}) for s in fg}
    windows: dict[str, tuple[float, float]] = {}
    if relation == "then":
        gaps = rng.uniform(0.35, 0.7, len(fg) - 1)
        lead, tail = rng.uniform(0.1, 0.5), rng.uniform(0.1, 0.4)
        # sequential sources must fit in MAX_DURATION: drop repetitions of the longest discrete one, then shrink gaps
        while sum(needs.values()) + gaps.sum() + lead + tail > MAX_DURATION:
            longer = [x for x in fg if (attrs[x]["count"] or 1) > 1]
            if not longer:
                gaps, lead, tail = gaps * 0.5, lead * 0.5, tail * 0.5
                continue
            s = max(longer, key=lambda x: needs[x])
            attrs[s]["count"] -= 1
            needs[s] = min_window(s, **{a: attrs[s][a] for a in ("count", "tempo", "loudness")})
        base = sum(needs.values()) + gaps.sum() + lead + tail
        duration = float(min(MAX_DURATION, max(MIN_DURATION, rng.uniform(base, max(base, MAX_DURATION)))))
        stretchable = [s for s in fg if sources[s].kind != "discrete"]
        extra = max(0.0, duration - base)
        share = rng.dirichlet(np.ones(len(stretchable))) * extra if stretchable else []
        extra_of = dict(zip(stretchable, share))
        t = lead
        for i, s in enumerate(fg):
            length = needs[s] + extra_of.get(s, 0.0)
            windows[s] = (t, min(duration, t + length))
            t += length + (gaps[i] if i < len(gaps) else 0.0)
    else:
        base = max(needs.values()) + 0.8
        duration = float(min(MAX_DURATION, max(MIN_DURATION, rng.uniform(base, max(base, MAX_DURATION)))))
        carriers = [s for s in fg if sources[s].kind != "discrete"] if relation == "while" else fg
        carrier = carriers[0]
        c0 = rng.uniform(0.05, 0.4)
        c1 = duration - rng.uniform(0.05, 0.4)
        windows[carrier] = (c0, c1)
        for s in fg:
            if s == carrier:
                continue
            if sources[s].kind == "discrete":
                slack = max(0.0, (c1 - c0) - needs[s] - 0.4)
                start = c0 + 0.2 + rng.uniform(0, slack)
                windows[s] = (start, min(c1, start + needs[s]))
            else:
                length = max(needs[s], rng.uniform(0.6, 0.9) * (c1 - c0))
                start = c0 + rng.uniform(0, max(0.0, (c1 - c0) - length))
                windows[s] = (start, min(duration, start + length))
    if background:
        windows[background] = (0.0, duration)
    duration = round(duration, 3)
    return {
        "names": names,
        "foreground": fg,
        "background": background,
        "relation": relation,
        "attrs": attrs,
        "windows": windows,
        "duration": duration,
    }
