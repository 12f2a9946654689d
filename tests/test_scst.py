"""Self-critical sequence training: the CIDEr-D reward, the sampled labels, the REINFORCE loss, the recipe option."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from test_modeling import EOS, PAD, SOS, batch, tiny_model

from hf_audiocap.metrics._scorers import CorpusNgrams, cider_d
from hf_audiocap.training.scst import CiderDReward, caption_words, sampled_labels, scst_loss


@pytest.fixture(scope="module")
def clotho_refs(shared_data):
    with open(shared_data / "clotho" / "clotho_captions_evaluation.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))[:200]
    return [[r[f"caption_{i}"] for i in range(1, 6)] for r in rows]


def test_reward_is_the_metrics_cider_d(clotho_refs):
    """Document frequencies over the same reference sets -> each clip's reward equals the metric's per-clip CIDEr-D
    (`_scorers.cider_d`, itself equal to pycocoevalcap's), for candidates good, unrelated, empty and repeated."""
    hyps = [refs[0] for refs in clotho_refs]
    hyps[1::4] = [clotho_refs[(i + 7) % len(clotho_refs)][2] for i in range(1, len(hyps), 4)]
    hyps[2], hyps[3] = "", "a a a a a a a a"
    rewards = CiderDReward(clotho_refs)(hyps, clotho_refs)

    def norm(caption):
        return " ".join(caption_words(caption))

    _, expected = cider_d(CorpusNgrams([norm(h) for h in hyps], [[norm(r) for r in refs] for refs in clotho_refs]))
    np.testing.assert_allclose(rewards, expected, rtol=0, atol=1e-9)
    assert rewards[0] > 1.0 and rewards[2] == 0.0


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


def test_beam_scst_favours_the_better_beams():
    """`sampling="beam"`: the clip's beams are the samples; after a few steps the best-rewarded beam of each clip has
    gained log-probability on the worst-rewarded one."""
    torch.manual_seed(0)
    model = tiny_model(seed=4).train()
    feats, mask = batch()
    inputs = {"input_features": feats, "attention_mask": mask}

    def decode(ids):
        return [" ".join(str(t) for t in row.tolist()) for row in ids]

    def reward(candidates, references):  # any content-dependent score: the beams of a clip differ in it
        return np.array([sum(int(t) for t in c.split()) % 97 for c in candidates], dtype=float)

    model.eval()
    with torch.no_grad():
        beams = model.generate(**inputs, num_beams=4, num_return_sequences=4, max_length=8)
    scores = torch.tensor(reward(decode(beams), None)).view(-1, 4)
    best = beams.view(-1, 4, beams.shape[1])[torch.arange(scores.shape[0]), scores.argmax(1)]
    worst = beams.view(-1, 4, beams.shape[1])[torch.arange(scores.shape[0]), scores.argmin(1)]

    def margin():
        model.eval()
        with torch.no_grad():
            logp = []
            for seq in (best, worst):
                labels = sampled_labels(seq, EOS)
                logits = model(**inputs, decoder_input_ids=seq[:, :-1]).logits.log_softmax(-1)
                token = logits.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
                logp.append((token * (labels != -100)).sum(-1))
        model.train()
        return (logp[0] - logp[1]).mean().item()

    before = margin()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    for _ in range(5):
        loss, _ = scst_loss(model, inputs, [["unused"]] * feats.shape[0], reward, decode, 4, 8, sampling="beam")
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert margin() > before + 0.5


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
