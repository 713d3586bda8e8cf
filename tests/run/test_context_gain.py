"""The context gain: lines 3–4 read after their own first couplet against another poem's, computed
by hand with the NumPy reference, on given poems and on the quatrains among samples."""
import math

import numpy as np
import pytest

from symlstm import ModelConfig, Vocab, compile_model, init_params
from symlstm.errors import InputError
from symlstm.run import evaluate
from symlstm.run.evaluate import context_gain

from conftest import QUATRAINS
from reference import forward


def _bits(params, vocab, text):
    """Bits of each predicted token of <bos> text <eos> under the reference."""
    ids = vocab.encode(text)
    z = np.zeros((2, 1, 7))
    logp, _, _ = forward(params, "lstm", 2, ids[:-1, None], np.ones((len(ids) - 1, 1)), z, z)
    return -logp[np.arange(len(ids) - 1), 0, ids[1:]] / math.log(2)


def _setup():
    vocab = Vocab.build(QUATRAINS[:300])
    cfg = ModelConfig(embedding=6, hidden=7, num_layers=2, dtype="float64", init_scale=0.4)
    params = init_params(len(vocab), cfg, 2)
    five = [t for t in QUATRAINS if len(t) == 24][:3]
    seven = [t for t in QUATRAINS if len(t) == 32][:2]
    lone = "白日依山盡，黃河入海流。"  # two lines: not a quatrain, left out
    return vocab, cfg, params, five, seven, [five[0], seven[0], lone, five[1], seven[1], five[2]]


def _by_hand(params, vocab, five, seven):
    """(own, other) bits of every token of lines 3–4: each layout's poems in order, poem i after
    poem i+1's lines 1–2."""
    own, other = [], []
    for part in (five, seven):
        for i, t in enumerate(part):
            half = len(t) // 2
            swapped = part[(i + 1) % len(part)][:half] + t[half:]
            assert swapped != t and swapped[half:] == t[half:]
            own.append(_bits(params, vocab, t)[half:])
            other.append(_bits(params, vocab, swapped)[half:])
    return np.concatenate(own), np.concatenate(other)


def _check(got, own, other):
    assert got["poems"] == 5 and got["tokens"] == own.size == 3 * 13 + 2 * 17  # 2 lines + marks + <eos>
    assert got["bits_own"] == pytest.approx(own.mean(), rel=1e-12)
    assert got["bits_other"] == pytest.approx(other.mean(), rel=1e-12)
    assert got["gain_bits"] == pytest.approx(other.mean() - own.mean(), rel=1e-9)
    assert got["gain_share"] == pytest.approx((other.mean() - own.mean()) / other.mean(), rel=1e-9)


def test_context_gain_is_the_reference_bits_of_lines_3_and_4_after_another_poems_first_couplet():
    vocab, cfg, params, five, seven, texts = _setup()
    _check(context_gain(compile_model(params, cfg), vocab, texts), *_by_hand(params, vocab, five, seven))


def test_the_context_gain_of_samples_reads_the_quatrains_among_them(monkeypatch):
    """The samples come in chunks with seeds seed, seed + 1, …; of what they hold, the quatrains
    are read as the test split's are (here the sampler is replaced by the poems of the test above)."""
    vocab, cfg, params, five, seven, texts = _setup()
    calls, left = [], list(texts)

    def draw(compiled, vocab, num, temperature, seed):
        calls.append((num, temperature, seed))
        return [left.pop(0) for _ in range(num)]
    monkeypatch.setattr(evaluate, "sample_texts", draw)
    got = evaluate.sample_context_gain(compile_model(params, cfg), vocab, num=6, temperature=0.9, seed=7, chunk=4)
    assert calls == [(4, 0.9, 7), (2, 0.9, 8)]
    assert (got.pop("samples"), got.pop("quatrains")) == (6, 5)
    _check(got, *_by_hand(params, vocab, five, seven))
    with pytest.raises(InputError, match="--samples must be between 1 and 100000, got 0"):
        evaluate.sample_context_gain(compile_model(params, cfg), vocab, num=0)


def test_context_gain_needs_two_quatrains_of_one_layout():
    vocab = Vocab.build(QUATRAINS[:50])
    cfg = ModelConfig(embedding=4, hidden=5)
    m = compile_model(init_params(len(vocab), cfg, 0), cfg)
    with pytest.raises(InputError, match="no two quatrains of one layout"):
        context_gain(m, vocab, [t for t in QUATRAINS if len(t) == 24][:1] + [t for t in QUATRAINS if len(t) == 32][:1])
