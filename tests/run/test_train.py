"""The training loop: run files, one validation schedule, the progress bar, checks before the first
step, exact resume, the NaN guard, saving whatever stops a run, and end-to-end training."""
import csv
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from symlstm.config import load_config
from symlstm.run import checkpoint as ckpt_io
from symlstm.run.train import TrainingError, train

from conftest import ROOT, tiny_raw


def quiet(*_):
    pass


# -- the loop -------------------------------------------------------------------------------------
def test_training_writes_run_files_and_refuses_to_overwrite(small_corpus, tmp_path):
    cfg = load_config(raw=tiny_raw())
    out = tmp_path / "run"
    summary = train(cfg, out, small_corpus, log=quiet, progress=False)
    assert summary["step"] == 6
    for name in ("last.h5", "best.h5", "metrics.csv", "loss.png"):
        assert (out / name).is_file()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert set(rows[0]) == {"step", "epoch", "train_loss", "valid_loss", "valid_perplexity", "learning_rate",
                            "grad_norm", "chars_per_sec", "elapsed_sec"}
    assert float(rows[-1]["valid_perplexity"]) == pytest.approx(np.exp(float(rows[-1]["valid_loss"])), rel=1e-4)
    with pytest.raises(TrainingError, match="already holds a run"):
        train(cfg, out, small_corpus, log=quiet, progress=False)
    train(cfg, out, small_corpus, overwrite=True, log=quiet, progress=False)


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_across_an_epoch_boundary_is_bit_exact(small_corpus, tmp_path, ema):
    """The small corpus gives 21 batches an epoch. The first leg stops at step 15
    (epoch 0); the second crosses into epoch 1 and ends at step 30, where an uninterrupted run ends.
    With a weight average (ema), both the average and the trained weights carry on exactly."""
    full = load_config(raw=tiny_raw(max_steps=30, eval_every=5, ema=ema))
    train(full, tmp_path / "a", small_corpus, log=quiet, progress=False)
    half = load_config(raw=tiny_raw(max_steps=15, eval_every=5, ema=ema))
    first = train(half, tmp_path / "b", small_corpus, log=quiet, progress=False)
    assert (first["step"], first["epoch"], first["stop_reason"]) == (15, 0, "max_steps")
    assert ckpt_io.load(tmp_path / "b" / "last.h5").extra["batch_in_epoch"] == 15
    train(full, tmp_path / "b", small_corpus, resume=True, log=quiet, progress=False)
    a, b = ckpt_io.load(tmp_path / "a" / "last.h5"), ckpt_io.load(tmp_path / "b" / "last.h5")
    assert (a.step, a.epoch, a.extra["batch_in_epoch"]) == (b.step, b.epoch, b.extra["batch_in_epoch"]) == (30, 1, 9)
    assert a.best_valid_loss == b.best_valid_loss and a.rng == b.rng
    assert a.params.keys() == b.params.keys() and a.optimizer.keys() == b.optimizer.keys()
    assert any(k.endswith(".trained") for k in a.optimizer) == (ema > 0)
    for k in a.params:
        np.testing.assert_array_equal(b.params[k], a.params[k])
    for k in a.optimizer:
        np.testing.assert_array_equal(b.optimizer[k], a.optimizer[k])


def test_warm_up_compiles_without_changing_what_training_does(small_corpus):
    from symlstm.core.compiled import compile_model
    from symlstm.core.model import init_params
    from symlstm.corpus.loading import load_corpus
    from symlstm.run.train import epoch_batches

    cfg = load_config(raw=tiny_raw())
    corpus = load_corpus(cfg.data, small_corpus, warn=quiet)
    batches = epoch_batches(cfg, corpus, 0)
    params = init_params(len(corpus.vocab), cfg.model, 0)
    cold, warm = (compile_model(params, cfg.model, cfg.train, seed=3) for _ in range(2))
    shapes = {x.shape for x, _, _ in batches}
    assert warm.warm_up(shapes) > 0 and warm.warm_up(shapes) == 0.0  # each shape compiled once
    for model in (cold, warm):
        for x, y, mask in batches[:3]:
            model.train_step(x, y, mask, *model.zero_state(x.shape[1]), 0.01)
    for got, want in ((warm.get_params(), cold.get_params()), (warm.get_state(), cold.get_state())):
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)


def test_one_validation_schedule_across_epoch_ends(small_corpus, tmp_path):
    """Epochs end at steps 21 and 42; validation comes every 15 steps and once at the end only."""
    train(load_config(raw=tiny_raw(max_steps=50, eval_every=15)), tmp_path / "s", small_corpus, log=quiet,
          progress=False)
    rows = list(csv.DictReader((tmp_path / "s" / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows] == [15, 30, 45, 50]
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 2]


def test_progress_bar_follows_the_time_budget():
    from symlstm.config import Config, TrainConfig
    from symlstm.run.train import RunState, Trainer

    t = Trainer.__new__(Trainer)  # only the bar's arithmetic: no model needed
    t.cfg, t.step_limit = Config(train=TrainConfig(time_budget=60.0)), 10_000
    t.state = RunState(step=100, elapsed_sec=10.0)
    assert t._bar_total(taken=100, seconds=10.0) == 100 + 500  # 50 s left at 0.1 s a step
    t.state = RunState(step=100, elapsed_sec=59.0)
    assert t._bar_total(taken=50, seconds=59.0 / 2) == 100 + 2  # a resumed run: this process's pace
    t.cfg = Config(train=TrainConfig(time_budget=0.0))
    assert t._bar_total(taken=100, seconds=10.0) == 10_000
    t.cfg, t.step_limit = Config(train=TrainConfig(time_budget=1e6)), 300
    assert t._bar_total(taken=100, seconds=10.0) == 300  # the step limit ends it first


def test_the_bar_leaves_compiling_out_of_its_rate_and_shows_it_apart(small_corpus, tmp_path, monkeypatch):
    """The issue's `1/30 [00:13<06:31, 13.50s/step]` for steps of 0.2 s: the bar's clock restarts
    after the step is compiled (tqdm's unpause), and its postfix says how long compiling took."""
    import symlstm.run.train as train_module
    from symlstm.core.compiled import CompiledModel

    events = []
    real_warm_up = CompiledModel.warm_up
    monkeypatch.setattr(CompiledModel, "warm_up", lambda self, shapes: events.append("compiled") or
                        real_warm_up(self, shapes))

    class Bar(train_module.tqdm):
        def unpause(self):
            events.append("unpause")
            super().unpause()

        def set_postfix(self, **kw):
            events.append(kw.get("compiled"))
            super().set_postfix(**kw)
    monkeypatch.setattr(train_module, "tqdm", Bar)
    train(load_config(raw=tiny_raw(max_steps=3, eval_every=3)), tmp_path / "b", small_corpus, log=quiet,
          progress=True)
    assert events[:2] == ["compiled", "unpause"]
    assert len(events) == 5 and all(e[:-1].isdigit() and e.endswith("s") for e in events[2:])  # e.g. compiled=3s


def _prose_root(tmp_path, chars=3400):
    """A 3,400-character prose file made from the shipped poems."""
    text = "".join((ROOT / "data" / "tang_quatrains.txt").read_text(encoding="utf-8").split())[:chars]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "article.txt").write_text(text, encoding="utf-8")
    return tmp_path


def _prose_cfg(**data):
    return load_config(raw={"name": "prose", "model": {"embedding": 8, "hidden": 16},
                            "data": {"path": "data/article.txt", "format": "text", "mode": "stream",
                                     "batch_size": 8, "seq_length": 50, **data},
                            "train": {"max_epochs": 3, "eval_every": 100, "num_samples": 1}})


def test_a_short_prose_file_trains_validates_and_saves(tmp_path):
    """The validation split (5 %: 170 characters) is shorter than one batch of 8 × 50: it is scored
    with the rows it has, and the run ends with its checkpoints."""
    root = _prose_root(tmp_path)
    summary = train(_prose_cfg(), tmp_path / "run", root, log=quiet, progress=False)
    assert summary["stop_reason"] == "max_epochs" and summary["step"] > 0
    assert np.isfinite(summary["valid_loss"])
    assert ckpt_io.load(tmp_path / "run" / "last.h5").step == summary["step"]


def test_a_split_too_short_to_train_is_refused_before_the_first_step(tmp_path):
    root = _prose_root(tmp_path)
    lines = []
    with pytest.raises(TrainingError, match=r"training split has \d+ tokens, fewer than .* = 4401; "
                                            "lower data.batch_size or data.seq_length"):
        train(_prose_cfg(seq_length=400, batch_size=10), tmp_path / "run", root, log=lines.append, progress=False)
    assert not any(l.startswith("step") for l in lines) and not (tmp_path / "run" / "last.h5").exists()
    with pytest.raises(TrainingError, match=r"validation split has 0 characters; raise data.valid_fraction"):
        train(_prose_cfg(valid_fraction=0.0), tmp_path / "run2", root, log=quiet, progress=False)


def test_an_unexpected_error_still_saves_what_was_trained(small_corpus, tmp_path, monkeypatch):
    from symlstm.core.compiled import CompiledModel

    real, calls = CompiledModel.train_step, []

    def failing(self, *args):
        if args[-1] == 0.0:  # warm_up's compiling steps (learning rate 0, undone)
            return real(self, *args)
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("a bug in the fifth step")
        return real(self, *args)
    monkeypatch.setattr(CompiledModel, "train_step", failing)
    with pytest.raises(RuntimeError, match="fifth step"):
        train(load_config(raw=tiny_raw(max_steps=10, eval_every=100)), tmp_path / "x", small_corpus, log=quiet,
              progress=False)
    saved = ckpt_io.load(tmp_path / "x" / "last.h5")
    assert saved.step == 4 and saved.extra["batch_in_epoch"] == 4


def test_resume_refuses_a_changed_vocabulary(small_corpus, tmp_path):
    cfg = load_config(raw=tiny_raw(max_steps=2))
    train(cfg, tmp_path / "r", small_corpus, log=quiet, progress=False)
    other = load_config(raw={**tiny_raw(max_steps=4), "data": {**tiny_raw()["data"], "min_count": 3}})
    with pytest.raises(TrainingError, match="may change train.. settings only"):
        train(other, tmp_path / "r", small_corpus, resume=True, log=quiet, progress=False)
    with h5py.File(tmp_path / "r" / "last.h5", "a") as f:
        vocab = [s.decode() for s in f["vocab"][()]][:-1]
        del f["vocab"]
        f.create_dataset("vocab", data=np.array(vocab, dtype=object), dtype=h5py.string_dtype())
    with pytest.raises(TrainingError, match="does not match the corpus"):
        train(None, tmp_path / "r", small_corpus, resume=True, log=quiet, progress=False)


def test_nan_loss_stops_with_the_step_and_keeps_the_checkpoint(small_corpus, tmp_path):
    cfg = load_config(raw=tiny_raw(max_steps=3, eval_every=3))
    train(cfg, tmp_path / "n", small_corpus, log=quiet, progress=False)
    before = ckpt_io.load(tmp_path / "n" / "last.h5")
    blown = load_config(raw=tiny_raw(max_steps=20, eval_every=100, learning_rate=float("inf"), grad_clip=0.0))
    with pytest.raises(TrainingError, match=r"loss became nan at step \d+"):
        train(blown, tmp_path / "n", small_corpus, resume=True, log=quiet, progress=False)
    after = ckpt_io.load(tmp_path / "n" / "last.h5")
    assert after.step == before.step
    assert all(np.isfinite(v).all() for v in after.params.values())


@pytest.mark.slow
def test_tiny_yaml_end_to_end_through_the_cli(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "symlstm", "train", "--config", str(ROOT / "configs/tiny.yaml"),
                           "--out", str(tmp_path / "tiny"), "--no-progress"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "valid" in proc.stdout and "sample:" in proc.stdout
    assert (tmp_path / "tiny" / "best.h5").is_file()
