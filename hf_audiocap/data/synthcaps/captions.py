"""Caption grammar of SynthCaps: 5 varied captions per clip that name exactly its sources and audible attributes."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from hf_audiocap.data.synthcaps.bank import SYNTH_BANK, SourceBank
from hf_audiocap.data.synthcaps.scoring import named_sources
from hf_audiocap.metrics.text import caption_words

MIN_WORDS = 6
MAX_WORDS = 20
CAPTIONS_PER_CLIP = 5


def _choice(rng: np.random.Generator, options: Sequence, decay: float = 0.5):
    """Weighted choice favouring the first options (weights 1, decay, decay^2, ...): a consensus with variation."""
    if len(options) == 1:
        return options[0]
    w = decay ** np.arange(len(options))
    return options[int(rng.choice(len(options), p=w / w.sum()))]


_COUNT_ADV = {1: (" once", " one time", " a single time"), 2: (" twice", " two times"), 3: (" three times", " thrice")}
_TEMPO_ADV = {
    "fast": (" quickly", " rapidly", " fast", " at a fast pace", " in quick succession"),
    "slow": (" slowly", " at a slow pace", " at a slow steady rate"),
}
_LOUD_ADV = {"loud": (" loudly", " very loudly"), "quiet": (" quietly", " softly", " faintly")}
_DYN_TAIL = {
    "getting louder": (", getting louder", " and {gets} louder", ", growing louder and louder", " and {grows} louder"),
    "fading": (", fading away", " and {fades} away", ", getting quieter", " and slowly {dies} down"),
}
_DYN_NOMINAL = {
    "getting louder": (" getting louder", " growing louder", " that {gets} louder"),
    "fading": (" fading away", " getting quieter", " that slowly {fades} out"),
}
_AGREE = {"gets": "get", "grows": "grow", "fades": "fade", "dies": "die"}


def _agree(text: str, number: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: m.group(1) if number != "pl" else _AGREE[m.group(1)], text)


def _phrase(rng: np.random.Generator, spec, attrs: dict, form: str, mention: float) -> tuple[str, str]:
    """One source as a clause: form 'finite' ("a dog barks twice"), 'prog' ("a dog is barking twice"),
    'nominal' ("a dog barking twice") or 'bare' ("a dog", only without attributes). Returns (text, number)."""
    subject, number, verbs = _choice(rng, spec.subjects, 0.55)
    base, third, ing = _choice(rng, verbs, 0.5)
    adjs, advs, tail = [], [], ""
    has_slot = "{adj}" in subject
    loud = attrs["loudness"]
    if loud in ("loud", "quiet") and rng.random() < mention:
        adj_opts = spec.loud_adj if loud == "loud" else spec.quiet_adj
        if has_slot and adj_opts and rng.random() < 0.5:
            adjs.append(_choice(rng, adj_opts))
        else:
            advs.append(_choice(rng, _LOUD_ADV[loud]))
    if attrs["pitch"] in ("high", "low") and rng.random() < mention:
        adj_opts = spec.high_adj if attrs["pitch"] == "high" else spec.low_adj
        if has_slot and rng.random() < 0.7:
            adjs.append(_choice(rng, adj_opts))
        else:
            advs.append(_choice(rng, spec.high_adv if attrs["pitch"] == "high" else spec.low_adv))
    if attrs["count"] and rng.random() < mention:
        advs.append(_choice(rng, _COUNT_ADV[attrs["count"]]))
    if attrs["tempo"] in ("fast", "slow") and rng.random() < mention:
        advs.append(_choice(rng, _TEMPO_ADV[attrs["tempo"]]))
    if loud in _DYN_TAIL and rng.random() < mention:
        tail = _agree(_choice(rng, _DYN_NOMINAL[loud] if form in ("nominal", "bare") else _DYN_TAIL[loud]), number)
    if form == "bare" and (advs or tail):
        form = "nominal"
    subj = subject.replace("{adj}", "".join(adjs))
    if form == "bare":
        return subj, number
    if form == "finite":
        verb = third if number != "pl" else base
    elif form == "prog":
        verb = ("are " if number == "pl" else "is ") + ing
    else:
        verb = ing
    return f"{subj} {verb}{''.join(advs)}{tail}", number


def _be(number: str) -> str:
    return "are" if number == "pl" else "is"


def _one_caption(rng: np.random.Generator, plan: dict, mention: float, sources: dict) -> str:
    attrs = plan["attrs"]
    fg = plan["foreground"]

    def F(s):  # noqa: N802 - finite or progressive clause
        return _phrase(rng, sources[s], attrs[s], "finite" if rng.random() < 0.6 else "prog", mention)[0]

    def N(s):  # noqa: N802 - nominal
        return _phrase(rng, sources[s], attrs[s], "nominal", mention)

    rel = plan["relation"]
    if rel in ("single", "background"):
        s = fg[0]
        frame = _choice(rng, ("F", "N can be heard", "the sound of N", "you can hear N", "there be N", "N be heard", "a recording of N"), 0.6)  # fmt: skip
        if frame == "F":
            main = F(s)
        else:
            text, number = N(s)
            main = (
                frame.replace("be", _be(number)).replace("N", text)
                if frame in ("there be N", "N be heard")
                else frame.replace("N", text)
            )
    elif rel == "then":
        order = sorted(fg, key=lambda s: plan["windows"][s][0])
        if len(order) == 2:
            a, b = order
            frame = _choice(rng, ("F1, then F2", "F1 and then F2", "first F1, then F2", "F1, followed by N2", "N1 be1 followed by N2", "after N1, F2"), 0.6)  # fmt: skip
            main = _fill(rng, frame, {"1": a, "2": b}, F, N)
        else:
            frame = _choice(rng, ("F1, then F2, then F3", "first F1, then F2 and finally F3", "F1, followed by N2 and then N3", "N1, then N2, then N3"), 0.6)  # fmt: skip
            main = _fill(rng, frame, {"1": order[0], "2": order[1], "3": order[2]}, F, N)
    else:  # while
        if len(fg) == 2:
            frame = _choice(rng, ("F1 while F2", "F1 as F2", "F1 and F2 at the same time", "N1 and N2 can be heard at the same time", "while F2, F1", "N1 together with N2"), 0.6)  # fmt: skip
            main = _fill(rng, frame, {"1": fg[0], "2": fg[1]}, F, N)
        else:
            frame = _choice(rng, ("F1 while F2 and F3", "N1, N2 and N3 at the same time", "F1 as F2 and F3"), 0.6)
            main = _fill(rng, frame, {"1": fg[0], "2": fg[1], "3": fg[2]}, F, N)
    bg = plan["background"]
    if bg:
        frame = _choice(rng, ("M with B in the background", "M while G in the background", "M, with B in the background", "G in the background as M"), 0.6)  # fmt: skip
        b_text = _phrase(rng, sources[bg], attrs[bg], "bare" if rng.random() < 0.5 else "nominal", mention)[0]
        g_text = _phrase(rng, sources[bg], attrs[bg], "finite" if rng.random() < 0.5 else "prog", mention)[0]
        main = frame.replace("M", main).replace("B", b_text).replace("G", g_text)
    return _finish(main)


def _fill(rng, frame: str, slots: dict[str, str], F, N) -> str:  # noqa: N803
    out = frame
    for key, s in slots.items():
        if f"F{key}" in out:
            out = out.replace(f"F{key}", F(s), 1)
        if f"N{key}" in out:
            text, number = N(s)
            out = out.replace(f"be{key}", _be(number)).replace(f"N{key}", text, 1)
    return out


def _finish(text: str) -> str:
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    text = re.sub(r"\ban ([^aeiou\W])", r"a \1", text)
    text = " ".join(text.split())
    return text[0].upper() + text[1:] + "."


def make_captions(
    rng: np.random.Generator, plan: dict, k: int = CAPTIONS_PER_CLIP, bank: SourceBank = SYNTH_BANK
) -> list[str]:
    """``k`` distinct captions of MIN_WORDS..MAX_WORDS words that name every source of the clip and no other (sources
    and their words from ``bank``)."""
    true = set(plan["names"])
    base_mention = 0.85 if len(true) == 1 else 0.75
    captions: list[str] = []
    for attempt in range(400):
        mention = base_mention if attempt < 200 else base_mention * 0.5
        cap = _one_caption(rng, plan, mention, bank.sources)
        n_words = len(caption_words(cap))
        if not MIN_WORDS <= n_words <= MAX_WORDS or named_sources(cap, bank.catalogue) != true:
            continue
        if cap in captions and attempt < 300:
            continue
        captions.append(cap)
        if len(captions) == k:
            return captions
    raise RuntimeError(
        f"SynthCaps: cannot phrase a caption for {plan['names']} ({plan['relation']})"
    )  # pragma: no cover
