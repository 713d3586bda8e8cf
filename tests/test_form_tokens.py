"""Form control tokens (data.form_tokens): each poem starts with the token naming its form instead
of <bos>; the targets (characters and <eos>) stay those of a model without them."""
import json

import h5py
import numpy as np
import pytest

from conftest import ROOT, tiny_raw
from symlstm import SampleOptions, Sampler, load_config, load_corpus, load_model, train
from symlstm.forms import form_tokens, split_lines
from symlstm.vocab import BOS, SPECIALS

QUATRAINS = (ROOT / "data" / "tang_quatrains.txt").read_text(encoding="utf-8").splitlines()[:300]
CI = [{"rhythmic": "浣溪沙", "paragraphs": ["一曲新詞酒一杯，去年天氣舊亭臺。", "夕陽西下幾時回？"]},
      {"rhythmic": "某調", "paragraphs": ["山前雨，水上風。"]}]  # a tune without a template


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("forms")
    (root / "data" / "all").mkdir(parents=True)
    shi = [{"paragraphs": [p]} for p in QUATRAINS] + [{"paragraphs": ["床前明月光，疑是地上霜，舉頭望明月。"]}]
    (root / "data" / "all" / "shi.json").write_text(json.dumps(shi, ensure_ascii=False), encoding="utf-8")
    (root / "data" / "all" / "ci.json").write_text(json.dumps(CI * 30, ensure_ascii=False), encoding="utf-8")
    return root


def config(**train_keys):
    raw = tiny_raw(**train_keys)
    raw["data"] = {**raw["data"], "path": "data/all/*.json", "format": "json", "form_tokens": True}
    return load_config(raw=raw)


def test_each_poem_starts_with_its_form_token(project):
    corpus = load_corpus(config().data, project, warn=lambda *_: None)
    vocab = corpus.vocab
    assert vocab.itos[:len(SPECIALS) + len(form_tokens())] == list(SPECIALS) + form_tokens()
    assert {"<wujue>", "<qijue>", "<gushi>", "<ci>", "<ci:浣溪沙>"} <= set(vocab.itos)
    first = {}
    for split in ("train", "valid", "test"):
        for text, seq in zip(corpus.texts[split], corpus.splits[split]):
            first[text] = vocab.itos[seq[0]]
            assert len(seq) == len(text) + 2 and seq[-1] == vocab.stoi["<eos>"]  # the same targets as without
    wujue = next(t for t in QUATRAINS if len(t) == 24)
    qijue = next(t for t in QUATRAINS if len(t) == 32)
    assert first[wujue] == "<wujue>" and first[qijue] == "<qijue>"
    assert first["一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回？"] == "<ci:浣溪沙>"
    assert first["山前雨，水上風。"] == "<ci>" and first["床前明月光，疑是地上霜，舉頭望明月。"] == "<gushi>"
    assert BOS not in {int(s[0]) for s in corpus.splits["train"]}


@pytest.mark.slow
def test_a_form_token_model_trains_samples_each_form_and_reports_each_form(project, tmp_path):
    from symlstm.evaluate import evaluate_split

    train(config(max_steps=3, eval_every=3), tmp_path / "run", project, log=lambda *_: None, progress=False)
    with h5py.File(tmp_path / "run" / "best.h5", "r") as f:
        assert f.attrs["version"] == 2 and f.attrs["form_tokens"]
    model, vocab, cfg = load_model(tmp_path / "run" / "best.h5")
    sampler = Sampler(model, vocab)
    fed = []
    step = model.step
    model.step = lambda tokens, h, c: (fed.append(int(tokens[0])), step(tokens, h, c))[1]
    text = sampler.sample(SampleOptions(num=1, form="qijue", temperature=0.9))[0]["text"]
    assert vocab.itos[fed[0]] == "<qijue>" and [len(line) for line in split_lines(text)] == [7] * 4
    fed.clear()
    sampler.sample(SampleOptions(num=1, form="ci:浣溪沙", temperature=0.9))
    assert vocab.itos[fed[0]] == "<ci:浣溪沙>"
    model.step = step
    result = evaluate_split(model, vocab, cfg.data, "train", project)
    rows = {k: v for k, v in result.items() if k.startswith("perplexity <")}
    assert "perplexity <wujue>" in rows and "perplexity <ci:浣溪沙>" in rows
    corpus = load_corpus(cfg.data, project, warn=lambda *_: None)
    assert result["tokens"] == sum(len(t) + 1 for t in corpus.texts["train"])  # form tokens are not targets
    assert all(np.isfinite(v) and v > 1 for v in rows.values())
