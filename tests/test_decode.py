"""Sampling paths, beam search, forms, acrostics, and exact evaluation against NumPy."""
import math

import numpy as np
import pytest

from symlstm import ModelConfig, SampleOptions, Sampler, Vocab, compile_model, evaluate, init_params
from symlstm.poetics.forms import form_of
from symlstm.vocab import SPECIALS
from symlstm.workbench.decode import DecodeError

from conftest import ROOT
from reference import nll_sum

POEMS = (ROOT / "data" / "tang_quatrains.txt").read_text(encoding="utf-8").splitlines()[:300]


@pytest.fixture(scope="module")
def sampler():
    vocab = Vocab.build(POEMS)
    cfg = ModelConfig(embedding=16, hidden=24, init_scale=0.3)
    m = compile_model(init_params(len(vocab), cfg, 3), cfg)
    return Sampler(m, vocab)


def clean(text, vocab):
    return all(ch in vocab.stoi for ch in text) and not any(s in text for s in SPECIALS)


def test_same_seed_same_samples(sampler):
    for extra in ({}, {"top_k": 20}):
        a = sampler.sample(SampleOptions(num=4, seed=5, max_length=20, **extra))
        b = sampler.sample(SampleOptions(num=4, seed=5, max_length=20, **extra))
        c = sampler.sample(SampleOptions(num=4, seed=6, max_length=20, **extra))
        assert a == b and a != c
        assert all(clean(s["text"], sampler.vocab) and len(s["text"]) <= 20 for s in a)


def test_compiled_and_step_paths_agree_on_greedy(sampler):
    compiled = sampler.sample(SampleOptions(num=2, argmax=True, max_length=30, prime="白日"))
    stepwise = sampler._stepwise(SampleOptions(num=2, argmax=True, max_length=30, prime="白日"))
    assert [s["text"] for s in compiled] == [s["text"] for s in stepwise]
    assert all(s["text"].startswith("白日") for s in compiled)


def test_beam_one_equals_argmax(sampler):
    for form in ("", "wujue"):
        greedy = sampler._stepwise(SampleOptions(num=1, argmax=True, max_length=24, form=form))[0]
        beam1 = sampler.sample(SampleOptions(num=1, beam=1, max_length=24, form=form))[0]
        assert beam1["text"] == greedy["text"]
        best = sampler.sample(SampleOptions(num=3, beam=4, max_length=24, form=form))
        assert [b["score"] for b in best] == sorted((b["score"] for b in best), reverse=True)
        assert all(form_of(b["text"]) == form for b in best) if form else all(b["text"] for b in best)


def test_a_beam_as_wide_as_the_search_space_finds_the_exhaustive_optimum():
    """Three characters and poems of at most 3 of them: 40 candidates, scored one by one with the
    NumPy reference (mean log-probability per predicted token, <eos> included)."""
    import itertools

    chars = "山月風"
    vocab = Vocab(list(SPECIALS) + list(chars))
    cfg = ModelConfig(embedding=5, hidden=6, dtype="float64", init_scale=1.5)
    params = init_params(len(vocab), cfg, 11)
    sampler = Sampler(compile_model(params, cfg), vocab)
    scores = {}
    for n in range(4):
        for poem in map("".join, itertools.product(chars, repeat=n)):
            ids = vocab.encode(poem)
            x, y = ids[:-1, None], ids[1:, None]
            z = np.zeros((1, 1, 6))
            total, count, _, _ = nll_sum(params, "lstm", 1, x, y, np.ones(x.shape), z, z)
            scores[poem] = -total / count
    ranked = sorted(scores, key=scores.get, reverse=True)
    assert len(scores) == 40 and scores[ranked[0]] > scores[ranked[1]] + 1e-9
    best = sampler.sample(SampleOptions(num=5, beam=40, max_length=3))
    assert [b["text"] for b in best] == ranked[:5]
    for b in best:
        assert b["score"] == pytest.approx(scores[b["text"]], rel=1e-12)
        assert -evaluate(sampler.m, [vocab.encode(b["text"])])["nll_per_token"] == pytest.approx(b["score"], rel=1e-12)


@pytest.mark.parametrize("form", ["wujue", "qijue", "wulv", "qilv"])
def test_forms_hold_for_100_samples(sampler, form):
    poems = sampler.sample(SampleOptions(num=100, form=form, temperature=1.5, seed=1))
    assert all(form_of(p["text"]) == form for p in poems), [p["text"] for p in poems if form_of(p["text"]) != form][:3]


def test_acrostic_with_forms(sampler):
    for form in ("qijue", "wulv"):
        poems = sampler.sample(SampleOptions(num=10, acrostic="春花秋月", form=form, temperature=0.9, seed=2, max_length=60))
        for p in poems:
            lines = [l for l in p["text"].replace("。", "，").split("，") if l]
            assert "".join(l[0] for l in lines[:4]) == "春花秋月", p["text"]
            assert form_of(p["text"]) == form


@pytest.mark.parametrize("opts, message", [
    (dict(temperature=0), "--temperature must be > 0"),
    (dict(top_p=1.5), r"--top-p must be in \(0, 1\]"),
    (dict(top_k=-1), r"--top-k must be 0 \(off\) or at least 1"),
    (dict(beam=-2), r"--beam must be 0 \(off\) or at least 1"),
    (dict(prime="白日☃"), "characters outside the vocabulary: ☃"),
    (dict(acrostic="春夏秋冬雪", form="wujue"), "has 5 characters but a wujue has 4 lines"),
    (dict(beam=2, temperature=0.5), "does not combine"),
    (dict(prime="白日依山盡。", form="wujue"), "does not fit --form wujue"),
])
def test_impossible_settings_are_refused(sampler, opts, message):
    with pytest.raises(DecodeError, match=message):
        sampler.sample(SampleOptions(**opts))


@pytest.mark.parametrize("batch_size", [1, 7])
def test_eval_equals_independent_numpy_forward(batch_size):
    vocab = Vocab.build(POEMS[:200])
    cfg = ModelConfig(embedding=6, hidden=7, num_layers=2, dtype="float64", init_scale=0.4)
    params = init_params(len(vocab), cfg, 0)
    m = compile_model(params, cfg)
    texts = POEMS[200:223]  # some characters are <unk> for this vocabulary
    seqs = [vocab.encode(t) for t in texts]
    got = evaluate(m, seqs, batch_size)
    total = count = 0.0
    for s in seqs:  # one poem at a time, unpadded, in NumPy
        x, y = s[:-1, None], s[1:, None]
        z = np.zeros((2, 1, 7))
        t, n, _, _ = nll_sum(params, "lstm", 2, x, y, np.ones(x.shape), z, z)
        total, count = total + t, count + n
    assert got["tokens"] == count == sum(len(t) + 1 for t in texts)
    assert got["nll_per_token"] == pytest.approx(total / count, rel=1e-12)
    assert got["perplexity"] == pytest.approx(math.exp(total / count), rel=1e-12)
    assert got["bits_per_char"] == pytest.approx(total / count / math.log(2), rel=1e-12)
    assert 0 < got["unk_rate"] < 1 and got["poems"] == len(texts)


def test_draw_is_the_inverse_cdf_and_never_picks_a_zero_weight():
    """model.draw (two-level prefix sums) against NumPy's float64 cumsum and searchsorted."""
    import pytensor
    import pytensor.tensor as pt

    from symlstm.backend.runtime import get_mode
    from symlstm.core.sampling import draw

    rng = np.random.default_rng(0)
    B, V = 64, 1000
    w = rng.random((B, V)).astype(np.float32) ** 4
    w[rng.random((B, V)) < 0.7] = 0  # masked tokens
    w[:, -100:] = 0  # a masked tail: rounding must not reach into it
    u = rng.random(B).astype(np.float32)
    u[:4] = [0.0, np.nextafter(np.float32(1), np.float32(0)), 0.5, 0.999]
    sw, su = pt.tensor("w", dtype="float32", shape=(B, V)), pt.tensor("u", dtype="float32", shape=(B,))
    f = pytensor.function([sw, su], draw(sw, su), mode=get_mode("jax"))
    for trial in range(3):
        got = f(w, u)
        cdf = np.cumsum(w.astype(np.float64), axis=1)
        target = u * cdf[:, -1]
        want = (cdf <= target[:, None]).sum(axis=1)  # the first index whose cumulative weight exceeds it
        assert (w[np.arange(B), got] > 0).all()
        close = np.abs(cdf[np.arange(B), np.minimum(want, V - 1)] - target) < 1e-4 * cdf[:, -1]
        assert ((got == want) | close).all() and (got == want).mean() > 0.9
        u = rng.random(B).astype(np.float32)
