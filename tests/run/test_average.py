"""Weight averaging (`train.ema`): the average follows its recurrence, computed here in NumPy from the
trained weights after each step; validation, the checkpoint's parameters and the samples are the
average, and the trained weights travel beside it for --resume (its exactness: test_train.py)."""
import csv

import numpy as np
import pytest

from symlstm.config import load_config
from symlstm.core.compiled import compile_model
from symlstm.core.model import init_params
from symlstm.corpus.loading import load_corpus
from symlstm.run import checkpoint as ckpt_io
from symlstm.run import train as train_module
from symlstm.run.evaluate import evaluate
from symlstm.run.train import epoch_batches, train

from conftest import tiny_raw


def test_the_average_follows_its_recurrence(small_corpus):
    cfg = load_config(raw=tiny_raw(ema=0.5))  # β_t = (1 + t) / (10 + t) up to t = 8, β = 0.5 from there
    corpus = load_corpus(cfg.data, small_corpus)
    params = init_params(len(corpus.vocab), cfg.model, seed=0)
    model = compile_model(params, cfg.model, cfg.train, seed=0)
    average = {k: v.astype(np.float64) for k, v in params.items()}
    for t, (x, y, mask) in enumerate(epoch_batches(cfg, corpus, 0)[:14]):
        model.train_step(x, y, mask, *model.zero_state(x.shape[1]), 0.01)
        beta = min(0.5, (1 + t) / (10 + t))
        for k, v in model.get_params().items():
            average[k] = beta * average[k] + (1 - beta) * v
    trained = model.get_params()
    with model.averaged():
        got = model.get_params()
    for k in params:
        np.testing.assert_allclose(got[k], average[k], rtol=1e-5, atol=1e-6, err_msg=k)
    after = model.get_params()  # the trained weights are back after the block
    assert all(np.array_equal(after[k], trained[k]) for k in params)
    assert not np.allclose(got["embedding"], trained["embedding"], atol=1e-4)


def test_validation_checkpoints_and_samples_are_the_average(small_corpus, tmp_path, monkeypatch):
    seen = []

    def record(model, *args, **kwargs):  # what the training loop samples from
        seen.append(model.get_params()["embedding"].copy())
        return []
    monkeypatch.setattr(train_module, "sample_texts", record)
    cfg = load_config(raw=tiny_raw(ema=0.8, max_steps=9))
    train(cfg, tmp_path / "run", small_corpus, log=lambda *_: None, progress=False)
    last = ckpt_io.load(tmp_path / "run" / "last.h5")
    trained = {k: last.optimizer.pop(f"{k}.trained") for k in last.params}
    assert not any(k.endswith(".avg") for k in last.optimizer)  # the average is stored once: as the params
    assert not np.allclose(last.params["embedding"], trained["embedding"], atol=1e-4)
    np.testing.assert_array_equal(seen[-1], last.params["embedding"])
    model, _, _ = ckpt_io.load_model(tmp_path / "run" / "last.h5")
    valid = load_corpus(cfg.data, small_corpus).splits["valid"]
    logged = float(list(csv.DictReader((tmp_path / "run" / "metrics.csv").open()))[-1]["valid_loss"])
    assert evaluate(model, valid, 16)["nll_per_token"] == pytest.approx(logged, rel=1e-4)
    model.set_params(trained)
    assert evaluate(model, valid, 16)["nll_per_token"] != pytest.approx(logged, rel=1e-4)
