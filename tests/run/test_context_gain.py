"""The context gain: lines 3–4 read after their own first couplet against another poem's, computed
by hand with the NumPy reference."""
import math

import numpy as np
import pytest

from symlstm import ModelConfig, Vocab, compile_model, init_params
from symlstm.errors import InputError
from symlstm.run.evaluate import context_gain

from conftest import QUATRAINS
from reference import forward


def _bits(params, vocab, text):
    """Bits of each predicted token of <bos> text <eos> under the reference."""
    ids = vocab.encode(text)
    z = np.zeros((2, 1, 7))
    logp, _, _ = forward(params, "lstm", 2, ids[:-1, None], np.ones((len(ids) - 1, 1)), z, z)
    return -logp[np.arange(len(ids) - 1), 0, ids[1:]] / math.log(2)


def test_context_gain_is_the_reference_bits_of_lines_3_and_4_after_another_poems_first_couplet():
    vocab = Vocab.build(QUATRAINS[:300])
    cfg = ModelConfig(embedding=6, hidden=7, num_layers=2, dtype="float64", init_scale=0.4)
    params = init_params(len(vocab), cfg, 2)
    five = [t for t in QUATRAINS if len(t) == 24][:3]
    seven = [t for t in QUATRAINS if len(t) == 32][:2]
    lone = "白日依山盡，黃河入海流。"  # two lines: not a quatrain, left out
    texts = [five[0], seven[0], lone, five[1], seven[1], five[2]]
    got = context_gain(compile_model(params, cfg), vocab, texts)
    own, other = [], []  # by hand: each layout's poems in order, poem i after poem i+1's lines 1–2
    for part in (five, seven):
        for i, t in enumerate(part):
            half = len(t) // 2
            swapped = part[(i + 1) % len(part)][:half] + t[half:]
            assert swapped != t and swapped[half:] == t[half:]
            own.append(_bits(params, vocab, t)[half:])
            other.append(_bits(params, vocab, swapped)[half:])
    own, other = np.concatenate(own), np.concatenate(other)
    assert got["poems"] == 5 and got["tokens"] == own.size == 3 * 13 + 2 * 17  # 2 lines + marks + <eos>
    assert got["bits_own"] == pytest.approx(own.mean(), rel=1e-12)
    assert got["bits_other"] == pytest.approx(other.mean(), rel=1e-12)
    assert got["gain_bits"] == pytest.approx(other.mean() - own.mean(), rel=1e-9)
    assert got["gain_share"] == pytest.approx((other.mean() - own.mean()) / other.mean(), rel=1e-9)


def test_context_gain_needs_two_quatrains_of_one_layout():
    vocab = Vocab.build(QUATRAINS[:50])
    cfg = ModelConfig(embedding=4, hidden=5)
    m = compile_model(init_params(len(vocab), cfg, 0), cfg)
    with pytest.raises(InputError, match="no two quatrains of one layout"):
        context_gain(m, vocab, [t for t in QUATRAINS if len(t) == 24][:1] + [t for t in QUATRAINS if len(t) == 32][:1])
