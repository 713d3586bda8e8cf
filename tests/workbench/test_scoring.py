"""Scoring a user's poem: per-character surprisal against the NumPy reference, and the verdict."""
import math

import numpy as np
import pytest

from symlstm import ModelConfig, Vocab, compile_model, init_params
from symlstm.run.evaluate import surprisal
from symlstm.workbench.scoring import score

from conftest import QUATRAINS
from reference import forward

POEMS = QUATRAINS[:300]


def test_surprisal_is_the_reference_negative_log_probability_in_bits():
    vocab = Vocab.build(POEMS)
    cfg = ModelConfig(embedding=6, hidden=7, num_layers=2, dtype="float64", init_scale=0.4)
    params = init_params(len(vocab), cfg, 2)
    m = compile_model(params, cfg)
    texts = ["白日依山盡，黃河入海流。欲窮千里目，更上一層樓。", "春☃"]  # ☃: <unk>
    got = surprisal(m, vocab, texts)
    for text, bits in zip(texts, got):
        ids = vocab.encode(text)
        z = np.zeros((2, 1, 7))
        logp, _, _ = forward(params, "lstm", 2, ids[:-1, None], np.ones((len(ids) - 1, 1)), z, z)
        want = -logp[np.arange(len(ids) - 1), 0, ids[1:]] / math.log(2)
        assert bits.shape == (len(text) + 1,) and np.allclose(bits, want, rtol=1e-12)
    rows = score(texts, m, vocab)
    assert rows[0]["faults"] == [] and rows[0]["form"] == "wujue"
    assert rows[0]["perplexity"] == pytest.approx(2 ** got[0].mean(), rel=1e-12)
    assert [ch for ch, _ in rows[0]["surprisal"]] == list(texts[0]) + ["<eos>"]
    assert rows[1]["unknown"] == ["☃"] and rows[1]["form"] is None


def test_score_without_a_model_names_the_faults():
    rows = score(["白日依山盡，白河入海流。欲窮千里目，更上一層流。"])
    assert [(f["rule"], f["line"]) for f in rows[0]["faults"]] == [("孤平", 2), ("重韻", 4)]
    assert "surprisal" not in rows[0]
