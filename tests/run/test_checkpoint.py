"""HDF5 checkpoints: the documented layout, atomic writes, named errors, and load_model."""
import subprocess
import sys

import h5py
import numpy as np
import pytest

from symlstm.run import checkpoint as ckpt_io


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
        assert f.attrs["format"] == "symlstm-checkpoint" and f.attrs["version"] == 3
        assert f["params/layer0/W"].shape == (3, 8) and f["vocab"][4].decode() == "月"


def test_crash_mid_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.h5"
    ckpt_io.save(path, _ckpt())
    code = ("import os, numpy as np, h5py\n"
            "from symlstm.run import checkpoint as c\n"
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
        assert f.attrs["version"] == 3 and not f.attrs["form_tokens"]
        f.attrs["version"] = 1  # the layout before form tokens: still read
    assert ckpt_io.load(tmp_path / "v.h5").step == _ckpt().step
    with h5py.File(tmp_path / "v.h5", "a") as f:
        f.attrs["version"] = 4
    with pytest.raises(ckpt_io.CheckpointError, match="checkpoint version 4, this symlstm reads versions 1, 2, 3"):
        ckpt_io.load(tmp_path / "v.h5")


def test_load_model_names_a_foreign_config(tmp_path):
    c = _ckpt()  # its config {"a": 1} is not symlstm's
    ckpt_io.save(tmp_path / "odd.h5", c)
    with pytest.raises(ckpt_io.CheckpointError, match=r"odd.h5: written by another version of symlstm\? .*unknown key 'a'"):
        ckpt_io.load_model(tmp_path / "odd.h5")


def test_missing_checkpoint_says_how_to_make_one(tmp_path):
    with pytest.raises(ckpt_io.CheckpointError, match="checkpoint not found; train a model first .*make train"):
        ckpt_io.load(tmp_path / "best.h5")


@pytest.mark.parametrize("tied", [True, False], ids=["tied-version3", "untied-as-version2"])
def test_a_tied_model_round_trips_and_a_version_2_file_still_loads(tmp_path, tied):
    """Version 3 adds tied weights (no output/W); a version 2 file (the untied layout, its config
    without the new keys) loads as before."""
    from symlstm import Config, ModelConfig, init_params
    from symlstm.core.compiled import compile_model

    mcfg = ModelConfig(embedding=3, hidden=4, tie_weights=tied)
    params = init_params(6, mcfg, 0)
    config = Config(model=mcfg).to_dict()
    if not tied:
        for key in ("tie_weights", "dropout_embed", "dropout_input", "dropout_hidden", "dropout_output",
                    "weight_dropout"):
            del config["model"][key]
        del config["train"]["weight_decay"]
    c = ckpt_io.Checkpoint(config=config, vocab=_ckpt().vocab, params=params)
    ckpt_io.save(tmp_path / "m.h5", c)
    if not tied:
        with h5py.File(tmp_path / "m.h5", "a") as f:
            f.attrs["version"] = 2
    with h5py.File(tmp_path / "m.h5") as f:
        assert ("output/W" in f["params"]) != tied and ("output/proj" in f["params"]) == tied
    model, vocab, cfg = ckpt_io.load_model(tmp_path / "m.h5")
    assert cfg.model.tie_weights == tied
    x = np.array([[2, 4], [4, 5]], np.int32)
    mask = np.ones((2, 2), np.float32)
    want = compile_model(params, mcfg).evaluate(x, x, mask, *model.zero_state(2))[0]
    assert model.evaluate(x, x, mask, *model.zero_state(2))[0] == want
