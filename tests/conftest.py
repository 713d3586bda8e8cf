import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
QUATRAINS = (ROOT / "data" / "tang_quatrains.txt").read_text(encoding="utf-8").splitlines()  # the shipped poems


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """The first 400 shipped quatrains, as a project root holding data/small.txt."""
    root = tmp_path_factory.mktemp("project")
    (root / "data").mkdir()
    (root / "data" / "small.txt").write_text("\n".join(QUATRAINS[:400]) + "\n", encoding="utf-8")
    return root


def tiny_raw(**train):
    """A config dict for a tiny, fast model on small_corpus."""
    return {"name": "t", "model": {"embedding": 8, "hidden": 16, "dropout": 0.1},
            "data": {"path": "data/small.txt", "batch_size": 16, "valid_fraction": 0.1, "test_fraction": 0.1},
            "train": {"max_steps": 6, "eval_every": 3, "num_samples": 1, **train}}


@pytest.fixture(scope="session")
def lex():
    from symlstm.poetics.lexicon import Lexicon

    return Lexicon.load()


def tiny_sampler(poems, seed: int):
    """A Sampler on an untrained tiny LSTM (E 16, H 24, weights ±0.3, `seed`) over the vocabulary of
    `poems`: what the decoding tests draw from (its choices are the constraints', not a model's)."""
    from symlstm import ModelConfig, Sampler, Vocab, compile_model, init_params

    vocab = Vocab.build(poems)
    cfg = ModelConfig(embedding=16, hidden=24, init_scale=0.3)
    return Sampler(compile_model(init_params(len(vocab), cfg, seed), cfg), vocab)


FORM_CI = [{"rhythmic": "浣溪沙", "paragraphs": ["一曲新詞酒一杯，去年天氣舊亭臺。", "夕陽西下幾時回？"]},
           {"rhythmic": "某調", "paragraphs": ["山前雨，水上風。"]}]  # a tune without a template


@pytest.fixture(scope="session")
def form_project(tmp_path_factory):
    """A project root with data/all/shi.json (the first 300 shipped quatrains and one 古詩) and
    data/all/ci.json (FORM_CI 30 times), in chinese-poetry's shape: every kind of form token."""
    root = tmp_path_factory.mktemp("forms")
    (root / "data" / "all").mkdir(parents=True)
    shi = [{"paragraphs": [p]} for p in QUATRAINS[:300]] + [{"paragraphs": ["床前明月光，疑是地上霜，舉頭望明月。"]}]
    (root / "data" / "all" / "shi.json").write_text(json.dumps(shi, ensure_ascii=False), encoding="utf-8")
    (root / "data" / "all" / "ci.json").write_text(json.dumps(FORM_CI * 30, ensure_ascii=False), encoding="utf-8")
    return root


def form_config(**train_keys):
    """tiny_raw's model on form_project's corpus, with form tokens."""
    from symlstm import load_config

    raw = tiny_raw(**train_keys)
    raw["data"] = {**raw["data"], "path": "data/all/*.json", "format": "json", "form_tokens": True}
    return load_config(raw=raw)
