"""Sampling paths, beam search, forms, acrostics, and exact evaluation against NumPy."""
import re

import numpy as np
import pytest

from symlstm import ModelConfig, SampleOptions, Sampler, Vocab, compile_model, evaluate, init_params
from symlstm.poetics.forms import form_of
from symlstm.vocab import SPECIALS
from symlstm.workbench.decode import DecodeError

from conftest import QUATRAINS, tiny_sampler
from reference import nll_sum

POEMS = QUATRAINS[:300]


@pytest.fixture(scope="module")
def sampler():
    return tiny_sampler(POEMS, seed=3)


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
    opts = SampleOptions(num=2, argmax=True, max_length=30, prime="白日", no_repeat="off")
    compiled, stepwise = sampler._compiled(opts), sampler._stepwise(opts)
    assert [s["text"] for s in compiled] == [s["text"] for s in stepwise]
    assert all(s["text"].startswith("白日") for s in compiled)


def loops(text: str) -> list[str]:
    """What a decoder's loop leaves, found here apart from constraints.py: a bigram of one line
    written again, unless it is a 疊字 (XX) or stands at the same column of the other line of a
    couplet (lines 1-2, 3-4 …), and any character three times in a row."""
    lines = re.split("[，。？！；：、]", text)
    seen, found = {}, []
    for i, line in enumerate(lines):
        for c in range(len(line) - 1):
            bigram = line[c:c + 2]
            if bigram in seen and bigram[0] != bigram[1] and not (i % 2 == 1 and (i - 1, c) in seen[bigram]):
                found.append(bigram)
            seen.setdefault(bigram, []).append((i, c))
        found += [line[c:c + 3] for c in range(len(line) - 2) if line[c] == line[c + 1] == line[c + 2]]
    return found


def test_greedy_and_beam_do_not_loop(sampler):
    """The bigram guard (`--no-repeat auto`: on for greedy, beam and low temperatures) against the
    same decoders without it, which loop on this model."""
    cases = [dict(max_length=48), dict(form="wujue"), dict(form="qilv"), dict(form="ci:浣溪沙")]
    unguarded = []
    for case in cases:
        for how in (dict(argmax=True), dict(beam=3), dict(temperature=0.3, seed=1)):
            for p in sampler.sample(SampleOptions(num=2, **case, **how)):
                assert loops(p["text"]) == [], (case, how, p["text"])
            unguarded += [loops(p["text"]) for p in sampler.sample(SampleOptions(num=2, no_repeat="off", **case, **how))]
    assert sum(map(bool, unguarded)) >= 4, unguarded


def test_the_guard_yields_where_nothing_else_fits(sampler):
    """A template's pair written again away from its parallel place, and a rule that leaves only the
    token that repeats a pair: the guard is soft, the fixed character and the rule's token stand."""
    from symlstm.workbench.constraints import Constraints, NoRepeat

    template = "山月＿＿＿，＿＿＿山月。＿＿＿＿＿，＿＿＿＿＿。"
    for p in sampler.sample(SampleOptions(num=2, template=template, tones="off", beam=2)):
        assert p["text"][:2] == p["text"][9:11] == "山月"
    vocab = sampler.vocab

    class Only:  # a hard rule that allows one token (as a rhyme position may)
        def allowed(self, text):
            m = np.zeros(len(vocab), bool)
            m[vocab.stoi["月"]] = True
            return m

    guarded = Constraints([Only()], soft=(NoRepeat(vocab),))
    assert not NoRepeat(vocab).allowed("山月，風山")[vocab.stoi["月"]]  # the guard alone forbids it
    assert np.flatnonzero(guarded.allowed("山月，風山")).tolist() == [vocab.stoi["月"]]


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
    (dict(beam=-2), r"--beam must be 0 \(off\) or at most 64"),
    (dict(prime="白日☃"), "characters outside the vocabulary: ☃"),
    (dict(acrostic="春夏秋冬雪", form="wujue"), "has 5 characters but a wujue has 4 lines"),
    (dict(beam=2, temperature=0.5), "does not combine"),
    (dict(prime="白日依山盡。", form="wujue"), "does not fit --form wujue"),
])
def test_impossible_settings_are_refused(sampler, opts, message):
    with pytest.raises(DecodeError, match=message):
        sampler.sample(SampleOptions(**opts))
