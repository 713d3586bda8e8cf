"""HDF5 checkpoints, written atomically (temporary file, fsync, rename), and `load_model`, which
turns one into a compiled model for sampling and evaluation (so those never import the training loop).

Layout (version 3): attrs format, version, form_tokens (whether the vocabulary holds form tokens
and sequences start with one instead of <bos>; version 1 files have none), config (JSON), step,
epoch, best_valid_loss; dataset
`vocab` (UTF-8 strings, index = token id); group `params` (embedding, layer{l}/W|U|b, output/W|b,
or for a tied model (config model.tie_weights, new in version 3) output/b and, when hidden ≠
embedding, output/proj instead of output/W; version 2 files are the untied layout and load as such);
group `optimizer` (state named `<param>.<slot>`, and `t` for Adam; with `train.ema`, `params` holds
the weight average and this group the trained weights as `<param>.trained`, with `avg.t`); group `rng` (attr `state`, the
JSON of NumPy's bit-generator states); attr `extra` (JSON: data order, metrics).
"""
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from symlstm.config import ConfigError, from_dict
from symlstm.core.compiled import compile_model
from symlstm.errors import UserError
from symlstm.vocab import Vocab, VocabError

FORMAT = "symlstm-checkpoint"
VERSION = 3
READS = (1, 2, 3)  # version 1: version 2 without form tokens; version 2: version 3 without tied weights


class CheckpointError(UserError, ValueError):
    """A checkpoint that is missing, unreadable, foreign or of another version."""


@dataclass
class Checkpoint:
    config: dict
    vocab: list
    params: dict
    optimizer: dict = field(default_factory=dict)
    rng: dict = field(default_factory=dict)
    step: int = 0
    epoch: int = 0
    best_valid_loss: float = float("inf")
    extra: dict = field(default_factory=dict)


def _write_group(group, arrays: dict):
    for name, value in arrays.items():
        group.create_dataset(name, data=np.asarray(value))


def _read_group(group) -> dict:
    out = {}
    group.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def save(path, ckpt: Checkpoint):
    """Write ckpt to path atomically: a crash at any moment leaves the previous file readable."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT
            f.attrs["version"] = VERSION
            f.attrs["form_tokens"] = Vocab(ckpt.vocab).has_form_tokens
            f.attrs["config"] = json.dumps(ckpt.config, ensure_ascii=False, sort_keys=True)
            f.attrs["step"] = ckpt.step
            f.attrs["epoch"] = ckpt.epoch
            f.attrs["best_valid_loss"] = ckpt.best_valid_loss
            f.attrs["extra"] = json.dumps(ckpt.extra, ensure_ascii=False)
            f.create_dataset("vocab", data=np.array(ckpt.vocab, dtype=object), dtype=h5py.string_dtype("utf-8"))
            _write_group(f.create_group("params"), ckpt.params)
            _write_group(f.create_group("optimizer"), ckpt.optimizer)
            f.create_group("rng").attrs["state"] = json.dumps(ckpt.rng)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        if tmp.exists():
            tmp.unlink()


def load(path) -> Checkpoint:
    """Read a checkpoint; a missing, corrupt, foreign or wrong-version file is a CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; train a model first "
                              "(`make train` writes runs/poems/best.h5)")
    try:
        f = h5py.File(path, "r")
    except OSError:
        raise CheckpointError(f"{path}: not a readable HDF5 file (corrupt or truncated?)") from None
    with f:
        fmt = f.attrs.get("format")
        if fmt != FORMAT:
            raise CheckpointError(f"{path}: not a symlstm checkpoint (format {fmt!r}, expected {FORMAT!r})")
        version = int(f.attrs.get("version", -1))
        if version not in READS:
            raise CheckpointError(f"{path}: checkpoint version {version}, this symlstm reads versions "
                                  f"{', '.join(map(str, READS))}")
        try:
            return Checkpoint(
                config=json.loads(f.attrs["config"]),
                vocab=[s.decode("utf-8") if isinstance(s, bytes) else s for s in f["vocab"][()]],
                params=_read_group(f["params"]),
                optimizer=_read_group(f["optimizer"]) if "optimizer" in f else {},
                rng=json.loads(f["rng"].attrs["state"]) if "rng" in f else {},
                step=int(f.attrs["step"]), epoch=int(f.attrs["epoch"]),
                best_valid_loss=float(f.attrs["best_valid_loss"]),
                extra=json.loads(f.attrs.get("extra", "{}")),
            )
        except (KeyError, ValueError) as err:
            raise CheckpointError(f"{path}: damaged checkpoint ({err})") from None


def load_model(path, backend: str | None = None):
    """(CompiledModel, Vocab, Config) from a checkpoint, ready for sampling and evaluation;
    `backend` overrides the one the checkpoint was trained with."""
    state = load(path)
    try:
        cfg = from_dict(state.config, source=f"{path} (its config)")
        vocab = Vocab(state.vocab)
    except (ConfigError, VocabError) as err:
        raise CheckpointError(f"{path}: written by another version of symlstm? {err}") from None
    mcfg = cfg.model if backend is None else dataclasses.replace(cfg.model, backend=backend)
    return compile_model(state.params, mcfg, cfg.train), vocab, cfg
