"""Form control tokens (data.form_tokens): each poem starts with the token naming its form instead
of <bos>; the targets (characters and <eos>) stay those of a model without them."""

import h5py
import numpy as np
import pytest

from symlstm import SampleOptions, Sampler, load_corpus, load_model, train
from symlstm.poetics.forms import form_token, form_tokens
from symlstm.poetics.script import split_lines
from symlstm.vocab import BOS, SPECIALS

from conftest import QUATRAINS, form_config

POEMS = QUATRAINS[:300]  # the shi of form_project


def test_a_ci_labelled_by_another_name_of_its_tune_takes_the_tunes_token():
    assert form_token(tune="酹江月・念奴嬌") == form_token(tune="念奴嬌") == "<ci:念奴嬌>"
    assert form_token(tune="憶江南") == "<ci:望江南・憶江南>" and form_token(tune="江神子・江城子") == "<ci>"


def test_each_poem_starts_with_its_form_token(form_project):
    corpus = load_corpus(form_config().data, form_project, warn=lambda *_: None)
    vocab = corpus.vocab
    assert vocab.itos[:len(SPECIALS) + len(form_tokens())] == list(SPECIALS) + form_tokens()
    assert {"<wujue>", "<qijue>", "<gushi>", "<ci>", "<ci:浣溪沙>"} <= set(vocab.itos)
    first = {}
    for split in ("train", "valid", "test"):
        for text, seq in zip(corpus.texts[split], corpus.splits[split]):
            first[text] = vocab.itos[seq[0]]
            assert len(seq) == len(text) + 2 and seq[-1] == vocab.stoi["<eos>"]  # the same targets as without
    wujue = next(t for t in POEMS if len(t) == 24)
    qijue = next(t for t in POEMS if len(t) == 32)
    assert first[wujue] == "<wujue>" and first[qijue] == "<qijue>"
    assert first["一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回？"] == "<ci:浣溪沙>"
    assert first["山前雨，水上風。"] == "<ci>" and first["床前明月光，疑是地上霜，舉頭望明月。"] == "<gushi>"
    assert BOS not in {int(s[0]) for s in corpus.splits["train"]}


@pytest.mark.slow
def test_a_form_token_model_trains_samples_each_form_and_reports_each_form(form_project, tmp_path):
    from symlstm.run.evaluate import evaluate_split

    train(form_config(max_steps=3, eval_every=3), tmp_path / "run", form_project, log=lambda *_: None, progress=False)
    with h5py.File(tmp_path / "run" / "best.h5", "r") as f:
        assert f.attrs["version"] == 3 and f.attrs["form_tokens"]
    model, vocab, cfg = load_model(tmp_path / "run" / "best.h5")
    sampler = Sampler(model, vocab)
    fed = []  # the first token each path feeds: the form scan (a 七絕) and the step path (a ci)
    step, in_form = model.step, model.generate_in_form
    model.step = lambda tokens, h, c: (fed.append(int(tokens[0])), step(tokens, h, c))[1]
    model.generate_in_form = lambda first, *rest, **kw: (fed.append(int(first[0])), in_form(first, *rest, **kw))[1]
    text = sampler.sample(SampleOptions(num=1, form="qijue", temperature=0.9))[0]["text"]
    assert vocab.itos[fed[0]] == "<qijue>" and [len(line) for line in split_lines(text)] == [7] * 4
    fed.clear()
    sampler.sample(SampleOptions(num=1, form="ci:浣溪沙", temperature=0.9))
    assert vocab.itos[fed[0]] == "<ci:浣溪沙>"
    model.step, model.generate_in_form = step, in_form
    result = evaluate_split(model, vocab, cfg.data, "train", form_project)
    rows = {k: v for k, v in result.items() if k.startswith("perplexity <")}
    assert "perplexity <wujue>" in rows and "perplexity <ci:浣溪沙>" in rows
    corpus = load_corpus(cfg.data, form_project, warn=lambda *_: None)
    assert result["tokens"] == sum(len(t) + 1 for t in corpus.texts["train"])  # form tokens are not targets
    assert all(np.isfinite(v) and v > 1 for v in rows.values())


@pytest.mark.slow
def test_validation_reports_each_form(form_project, tmp_path):
    import csv

    from symlstm.run.evaluate import evaluate_texts

    train(form_config(max_steps=4, eval_every=2), tmp_path / "run", form_project, log=lambda *_: None, progress=False)
    rows = list(csv.DictReader((tmp_path / "run" / "valid_forms.csv").open(encoding="utf-8")))
    total = {int(r["step"]): float(r["valid_loss"]) for r in
             csv.DictReader((tmp_path / "run" / "metrics.csv").open(encoding="utf-8"))}
    model, vocab, cfg = load_model(tmp_path / "run" / "last.h5")
    valid = load_corpus(cfg.data, form_project, warn=lambda *_: None).texts["valid"]
    def group(t):  # the groups, by the text: every ci tune in one
        return "ci" if t.startswith(("一曲", "山前")) else "gushi" if t.startswith("床前") else \
            {24: "wujue", 32: "qijue"}[len(t)]
    forms = {}
    for t in valid:
        forms.setdefault(group(t), []).append(t)
    last = [r for r in rows if int(r["step"]) == 4]
    assert {r["form"]: int(r["poems"]) for r in last} == {k: len(v) for k, v in forms.items()}
    tokens = {k: sum(len(t) + 1 for t in v) for k, v in forms.items()}  # characters and <eos>
    pooled = sum(float(r["valid_loss"]) * tokens[r["form"]] for r in last) / sum(tokens.values())
    assert pooled == pytest.approx(total[4], rel=1e-5)  # the per-form losses make up the whole
    for r in last:
        assert float(r["valid_loss"]) == pytest.approx(evaluate_texts(model, vocab, forms[r["form"]])["nll_per_token"],
                                                       rel=1e-5)
