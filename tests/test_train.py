"""Config validation, checkpoints, resume, the NaN guard and end-to-end training."""
import csv
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT, tiny_raw
from symlstm import checkpoint as ckpt_io
from symlstm.config import ConfigError, load_config
from symlstm.train import TrainingError, train


def quiet(*_):
    pass


# -- config ---------------------------------------------------------------------------------------
def test_unknown_key_suggests_the_closest(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hiden: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'model.hiden'; did you mean 'hidden'\?"):
        load_config(f)
    f.write_text("trian:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'trian'; did you mean 'train'"):
        load_config(f)


def test_wrong_type_and_bad_values(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hidden: big\n")
    with pytest.raises(ConfigError, match="model.hidden: expected int, got str 'big'"):
        load_config(f)
    with pytest.raises(ConfigError, match="train.optimizer: 'adamw' is not one of"):
        load_config(overrides=["train.optimizer=adamw"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_and_name(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("model:\n  hidden: 3\n")
    cfg = load_config(f, ["model.hidden=512", "train.learning_rate=0.002", "data.path=x.txt"])
    assert (cfg.model.hidden, cfg.train.learning_rate, cfg.data.path, cfg.name) == (512, 0.002, "x.txt", "mine")


def test_shipped_configs_are_valid():
    for name in ("tiny", "poems", "tang"):
        load_config(ROOT / "configs" / f"{name}.yaml")


# -- checkpoints ----------------------------------------------------------------------------------
def _ckpt():
    rng = np.random.default_rng(0)
    return ckpt_io.Checkpoint(config={"a": 1}, vocab=["<pad>", "<unk>", "<bos>", "<eos>", "月", "東"],
                              params={"embedding": rng.normal(size=(6, 3)).astype(np.float32),
                                      "layer0/W": rng.normal(size=(3, 8)).astype(np.float32)},
                              optimizer={"layer0/W.m": rng.normal(size=(3, 8)), "t": np.array(3.0)},
                              rng={"dropout": np.random.default_rng(1).bit_generator.state},
                              step=7, epoch=2, best_valid_loss=1.5, extra={"batch_in_epoch": 4})


def test_checkpoint_round_trip_is_bit_exact(tmp_path):
    c = _ckpt()
    ckpt_io.save(tmp_path / "a.h5", c)
    d = ckpt_io.load(tmp_path / "a.h5")
    assert (d.config, d.vocab, d.step, d.epoch, d.best_valid_loss, d.extra, d.rng) == \
           (c.config, c.vocab, c.step, c.epoch, c.best_valid_loss, c.extra, c.rng)
    for k in c.params:
        assert d.params[k].dtype == c.params[k].dtype and np.array_equal(d.params[k], c.params[k])
    with h5py.File(tmp_path / "a.h5") as f:  # the documented layout
        assert f.attrs["format"] == "symlstm-checkpoint" and f.attrs["version"] == 1
        assert f["params/layer0/W"].shape == (3, 8) and f["vocab"][4].decode() == "月"


def test_crash_mid_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.h5"
    ckpt_io.save(path, _ckpt())
    code = ("import os, numpy as np, h5py\n"
            "from symlstm import checkpoint as c\n"
            "orig = h5py.File.__exit__\n"
            "def crash(self, *a):\n"
            "    orig(self, *a)\n"
            "    os._exit(9)\n"
            "h5py.File.__exit__ = crash\n"
            f"ck = c.load({str(path)!r}); ck.step = 99\n"
            f"c.save({str(path)!r}, ck)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == 9  # died after writing the temporary file, before the rename
    assert ckpt_io.load(path).step == 7


def test_bad_checkpoints_are_named(tmp_path):
    with pytest.raises(ckpt_io.CheckpointError, match="checkpoint not found"):
        ckpt_io.load(tmp_path / "none.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    with pytest.raises(ckpt_io.CheckpointError, match="junk.h5: not a readable HDF5 file"):
        ckpt_io.load(tmp_path / "junk.h5")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f.attrs["format"] = "something-else"
    with pytest.raises(ckpt_io.CheckpointError, match="not a symlstm checkpoint"):
        ckpt_io.load(tmp_path / "other.h5")
    ckpt_io.save(tmp_path / "v.h5", _ckpt())
    with h5py.File(tmp_path / "v.h5", "a") as f:
        f.attrs["version"] = 2
    with pytest.raises(ckpt_io.CheckpointError, match="checkpoint version 2, this symlstm reads version 1"):
        ckpt_io.load(tmp_path / "v.h5")


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


def test_resume_equals_uninterrupted(small_corpus, tmp_path):
    full = load_config(raw=tiny_raw(max_steps=8, eval_every=100))
    train(full, tmp_path / "a", small_corpus, log=quiet, progress=False)
    half = load_config(raw=tiny_raw(max_steps=4, eval_every=100))
    train(half, tmp_path / "b", small_corpus, log=quiet, progress=False)
    train(full, tmp_path / "b", small_corpus, resume=True, log=quiet, progress=False)
    a, b = ckpt_io.load(tmp_path / "a" / "last.h5"), ckpt_io.load(tmp_path / "b" / "last.h5")
    assert a.step == b.step == 8
    for k in a.params:
        np.testing.assert_allclose(b.params[k], a.params[k], rtol=1e-6, atol=1e-7)
    for k in a.optimizer:
        np.testing.assert_allclose(b.optimizer[k], a.optimizer[k], rtol=1e-6, atol=1e-7)


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
