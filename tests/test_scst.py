"""Self-critical sequence training: the CIDEr-D reward, the sampled labels, the REINFORCE loss, the recipe option."""

from __future__ import annotations

import csv
import math
from collections import Counter

import numpy as np
import pytest
import torch
from test_modeling import EOS, PAD, SOS, batch, tiny_model

from hf_audiocap.metrics.scorers import CorpusNgrams, DocumentFrequencies, cider_d
from hf_audiocap.training.scst import CiderDReward, caption_words, sampled_labels, scst_loss


@pytest.fixture(scope="module")
def clotho_refs(shared_data):
    with open(shared_data / "clotho" / "clotho_captions_evaluation.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:200]
    return [[r[f"caption_{i}"] for i in range(1, 6)] for r in rows]


def test_reward_is_the_metrics_cider_d(clotho_refs):
    """Document frequencies over the same reference sets -> each clip's reward equals the metric's per-clip CIDEr-D
    (`scorers.cider_d`, itself equal to pycocoevalcap's), for candidates good, unrelated, empty and repeated."""
    hyps = [refs[0] for refs in clotho_refs]
    hyps[1::4] = [clotho_refs[(i + 7) % len(clotho_refs)][2] for i in range(1, len(hyps), 4)]
    hyps[2], hyps[3] = "", "a a a a a a a a"
    rewards = CiderDReward(clotho_refs)(hyps, clotho_refs)

    def norm(caption):
        return " ".join(caption_words(caption))

    _, expected = cider_d(CorpusNgrams([norm(h) for h in hyps], [[norm(r) for r in refs] for refs in clotho_refs]))
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-9)
    assert rewards[0] > 1.0 and rewards[2] == 0.0


def _cider_d_by_the_formula(candidate: str, refs: list[str], corpus: list[list[str]]) -> float:
    """CIDEr-D written out term by term (Vedantam et al. 2015 with pycocoevalcap's conventions), document frequencies
    from `corpus`: an independent check of the vectorised core when df does not come from the evaluated clips."""

    def grams(text):
        words = caption_words(text)
        return [Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1)) for n in range(1, 5)], words

    df = Counter(g for rr in corpus for g in {g for r in rr for c in grams(r)[0] for g in c})

    def vector(text):
        counts, words = grams(text)
        vec = [{g: c * (math.log(len(corpus)) - math.log(max(1.0, df[g]))) for g, c in cn.items()} for cn in counts]
        return vec, [math.sqrt(sum(w * w for w in v.values())) for v in vec], max(len(words) - 1, 0)

    (hyp, hyp_norm, hyp_len), total = vector(candidate), 0.0
    for ref in refs:
        vec, norm, length = vector(ref)
        penalty = math.exp(-((hyp_len - length) ** 2) / (2 * 6.0**2))
        for n in range(4):
            dot = sum(min(w, vec[n][g]) * vec[n][g] for g, w in hyp[n].items() if g in vec[n])
            total += (dot / (hyp_norm[n] * norm[n]) if hyp_norm[n] and norm[n] else dot) * penalty
    return total / 4 / len(refs) * 10.0


def test_reward_with_training_document_frequencies():
    """The reward's df and #clips come from the training references, not from the batch it scores: the one CIDEr-D
    core then equals the formula written out, and differs from the metric's batch-df value."""
    training = [
        ["A dog barks twice.", "a dog is barking", "Dogs bark loudly"],
        ["Rain falls on a roof", "heavy rain and thunder"],
        ["A car horn honks!", "a car's horn honks twice", "traffic passes by"],
        ["birds chirp in the trees", "Birds are singing", "a bird sings"],
    ]
    refs = [training[0], training[2], ["a dog barks at a car", "a car drives past a dog"]]
    candidates = ["a dog barks", "a car horn honks twice", "a dog and a car", "", "dog dog dog dog"]
    references = [refs[0], refs[1], refs[2], refs[2], refs[0]]
    rewards = CiderDReward(training)(candidates, references)
    expected = [_cider_d_by_the_formula(c, r, training) for c, r in zip(candidates, references)]
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-12)
    assert rewards[3] == 0.0 and rewards[0] > rewards[2] > 0.0
    norm = [" ".join(caption_words(c)) for c in candidates]
    norm_refs = [[" ".join(caption_words(r)) for r in rr] for rr in references]
    batch_df = cider_d(CorpusNgrams(norm, norm_refs))[1]
    assert not np.allclose(rewards, batch_df)  # the df source matters, and is the training corpus here
    same_df = DocumentFrequencies.from_references(norm_refs)
    np.testing.assert_allclose(cider_d(CorpusNgrams(norm, norm_refs), document_frequencies=same_df)[1], batch_df)


def test_caption_words_follow_ptb_on_plain_captions():
    assert caption_words("A dog barks, then a car's horn honks!") == [
        "a",
        "dog",
        "barks",
        "then",
        "a",
        "car's",
        "horn",
        "honks",
    ]


def test_one_caption_normaliser():
    from hf_audiocap.data import synthcaps
    from hf_audiocap.metrics import text

    assert synthcaps.caption_words is caption_words is text.caption_words
    assert synthcaps.normalize_caption is text.normalize_caption
    assert (
        text.normalize_caption("  The dogs' barking -- twice; a café's bell!")
        == "the dogs barking twice a café's bell"
    )


def test_sampled_labels_stop_after_the_first_eos():
    seq = torch.tensor([[SOS, 5, 6, EOS, PAD, PAD], [SOS, 7, 8, 9, 10, 11], [SOS, EOS, PAD, PAD, PAD, PAD]])
    labels = sampled_labels(seq, EOS)
    assert labels.tolist() == [
        [5, 6, EOS, -100, -100],
        [7, 8, 9, 10, 11],  # no eos within max_length: every sampled token counts
        [EOS, -100, -100, -100, -100],
    ]


def test_scst_raises_the_probability_of_rewarded_tokens():
    """REINFORCE's sign and baseline: rewarding samples for each occurrence of one token makes the model emit it more
    (the same model and clips; SGD on the SCST loss only)."""
    torch.manual_seed(0)
    model = tiny_model(seed=3).train()
    feats, mask = batch()
    target = 7

    def decode(ids):
        return [" ".join(str(t) for t in row.tolist()) for row in ids]

    def reward(candidates, references):
        return np.array([c.split().count(str(target)) for c in candidates], dtype=float)

    def target_prob():
        model.eval()
        with torch.no_grad():
            ids = torch.full((feats.shape[0], 1), SOS)
            logits = model(input_features=feats, attention_mask=mask, decoder_input_ids=ids).logits
        model.train()
        return logits[:, -1].softmax(-1)[:, target].mean().item()

    before = target_prob()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    refs = [["unused"]] * feats.shape[0]
    for _ in range(15):
        loss, _ = scst_loss(model, {"input_features": feats, "attention_mask": mask}, refs, reward, decode, 4, 8)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert target_prob() > 2 * before


def test_beam_scst_is_reinforce_over_the_clips_beams():
    """`sampling="beam"`: the samples are the clip's best beams (Cornia et al.'s variant), each weighted by its reward
    minus the mean of its clip's other beams; a small step down the loss raises the likelihood of the beams rewarded
    above their clip's mean against those below it."""
    torch.manual_seed(0)
    model = tiny_model(seed=4).train()
    feats, mask = batch()
    inputs = {"input_features": feats, "attention_mask": mask}
    beams_per_clip = 4

    def decode(ids):
        return [" ".join(str(t) for t in row.tolist()) for row in ids]

    def reward(candidates, references):  # any content-dependent score: the beams of a clip differ in it
        return np.array([sum(int(t) for t in c.split()) % 97 for c in candidates], dtype=float)

    model.eval()
    with torch.no_grad():
        beams = model.generate(
            **inputs, num_beams=beams_per_clip, num_return_sequences=beams_per_clip, max_length=8, early_stopping=True
        )
    model.train()
    rewards = torch.tensor(reward(decode(beams), None), dtype=torch.float32).view(-1, beams_per_clip)
    others = (rewards.sum(1, keepdim=True) - rewards) / (beams_per_clip - 1)
    advantage = (rewards - others).view(-1)
    assert (advantage != 0).any()
    labels = sampled_labels(beams, EOS)
    encoder_index = torch.arange(feats.shape[0]).repeat_interleave(beams_per_clip)

    def weighted_likelihood():
        """sum of advantage x log-probability of each beam's tokens, per token, as the loss weighs them"""
        logits = model(**inputs, decoder_input_ids=beams[:, :-1], encoder_index=encoder_index).logits
        token = logits.log_softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return (advantage[:, None] * token * (labels != -100)).sum() / (labels != -100).sum()

    refs = [["unused"]] * feats.shape[0]
    loss, mean_reward = scst_loss(model, inputs, refs, reward, decode, beams_per_clip, 8, sampling="beam")
    with torch.no_grad():
        before = weighted_likelihood()
    torch.testing.assert_close(loss, -before)  # these beams, this baseline, this sign
    assert mean_reward == pytest.approx(rewards.mean().item())
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    opt.zero_grad()
    loss.backward()
    opt.step()
    with torch.no_grad():
        assert weighted_likelihood() > before


def test_scst_needs_two_samples_and_one_reference_set_per_clip():
    model = tiny_model()
    feats, mask = batch()
    inputs = {"input_features": feats, "attention_mask": mask}
    with pytest.raises(ValueError, match="at least 2 samples"):
        scst_loss(model, inputs, [["x"]] * feats.shape[0], None, None, num_samples=1)
    with pytest.raises(ValueError, match="reference sets"):
        scst_loss(model, inputs, [["x"]], None, None, num_samples=2)
    with pytest.raises(ValueError, match="sampling must be 'sample' or 'beam'"):
        scst_loss(model, inputs, [["x"]] * feats.shape[0], None, None, num_samples=2, sampling="greedy")
    with pytest.raises(ValueError, match="training references"):
        CiderDReward([])
