"""Exact evaluation (`run.evaluate`) against the independent NumPy forward pass."""
import math

import numpy as np
import pytest

from symlstm import ModelConfig, Vocab, compile_model, evaluate, init_params

from conftest import QUATRAINS, form_config
from reference import nll_sum


@pytest.mark.parametrize("batch_size", [1, 7])
def test_eval_equals_independent_numpy_forward(batch_size):
    vocab = Vocab.build(QUATRAINS[:200])
    cfg = ModelConfig(embedding=6, hidden=7, num_layers=2, dtype="float64", init_scale=0.4)
    params = init_params(len(vocab), cfg, 0)
    m = compile_model(params, cfg)
    texts = QUATRAINS[200:223]  # some characters are <unk> for this vocabulary
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


@pytest.mark.slow
def test_compare_scores_the_poems_every_model_knows_per_form(form_project, tmp_path):
    """compare against evaluate_texts on the poems every model's vocabulary knows, per form, for a
    ci whose tune the corpus gives, and for couplets against evaluate_couplets."""
    import math

    from symlstm import load_model, train
    from symlstm.poetics.forms import form_token
    from symlstm.run.evaluate import compare, evaluate_couplets, evaluate_texts

    train(form_config(max_steps=4, eval_every=2), tmp_path / "run", form_project, log=lambda *_: None, progress=False)
    model, vocab, _ = load_model(tmp_path / "run" / "last.h5")
    texts = QUATRAINS[:40] + ["☃" + QUATRAINS[0][1:]]  # one poem with a character no model knows
    result = compare({"a": (model, vocab), "b": (model, vocab)}, texts)
    knows = [t for t in texts if all(ch in vocab.stoi for ch in t)]
    assert len(knows) < len(texts) and result["known"] == len(knows) and result["rows"][-1]["poems"] == len(knows)
    by_form = {r["form"]: r for r in result["rows"]}
    for form in ("wujue", "qijue"):
        part = [t for t in knows if form_token(t) == f"<{form}>"]
        want = evaluate_texts(model, vocab, part)["perplexity"]
        assert by_form[form]["poems"] == len(part) and by_form[form]["a"] == by_form[form]["b"] == pytest.approx(want)
    assert math.isfinite(by_form["all"]["a"])
    ci = "一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回？"  # a corpus knows its tune; its text alone does not say
    result = compare({"a": (model, vocab)}, [ci], forms=["<ci:浣溪沙>"])
    want = evaluate(model, [vocab.encode(ci, start=vocab.stoi["<ci:浣溪沙>"])])["perplexity"]
    assert result["known"] == 1 and result["rows"][0]["form"] == "ci" and result["rows"][0]["a"] == pytest.approx(want)

    pairs = [t[:12] for t in QUATRAINS[:30] if len(t) == 24] + ["☃" + QUATRAINS[0][1:12]]
    pairs = [p for p in pairs if p[5] == "，" and p[11] == "。"]
    result = compare({"a": (model, vocab)}, pairs, couplets=True)
    knows = [p for p in pairs if all(ch in vocab.stoi for ch in p)]
    assert result["known"] == len(knows) < len(pairs) and len(result["rows"]) == 1
    assert result["rows"][0]["a"] == pytest.approx(evaluate_couplets(model, vocab, knows)["perplexity"])
