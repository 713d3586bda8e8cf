"""Symbolic gradients (`pytensor.grad`) against central differences, per parameter tensor.

Owns the check's data (a seeded batch whose mask has padding) and the comparison. The relative
error of an entry is |a - n| / max(|a| + |n|, 1e-8); a tensor passes when its largest is ≤ tol.
"""
import dataclasses

import numpy as np

from symlstm.backend import machine, onednn
from symlstm.backend.runtime import get_mode
from symlstm.config import ModelConfig
from symlstm.core import model as M
from symlstm.core.compiled import build_param_fns, draw_masks

TOLERANCE = 1e-6
BF16_TOLERANCE = 2e-2  # bf16 keeps 8 bits of mantissa: one rounding is off by up to 2^-9 ≈ 2e-3


def check_batch(vocab_size: int, batch: int, length: int, seed: int):
    """A seeded batch (x, y, mask) whose later rows are padded (mask 0 at their tail)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab_size, (length, batch)).astype(np.int32)
    y = rng.integers(0, vocab_size, (length, batch)).astype(np.int32)
    mask = np.ones((length, batch))
    for b in range(1, batch):
        mask[max(1, length - b):, b] = 0  # rows of decreasing length
    return x, y, mask


def gradient_check(cfg: ModelConfig, vocab_size: int = 6, batch: int = 3, length: int = 4,
                   step: float = 1e-4, max_entries: int = 40, seed: int = 0) -> list[dict]:
    """Compare pytensor.grad with central differences for every parameter tensor.

    Tensors with at most `max_entries` entries are checked whole, larger ones at a seeded random
    sample of that many entries. Returns one row per tensor: name, shape, entries, max_abs_error,
    max_rel_error, passed. Runs in float64 whatever cfg.dtype says. Each dropout of cfg enters
    as a seeded mask (`compiled.draw_masks`), an input held fixed while the entries are perturbed.
    """
    cfg = dataclasses.replace(cfg, dtype="float64")
    mode = get_mode(cfg.backend)
    values = M.init_params(vocab_size, cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for v in values.values():  # move biases off zero so every gradient path is exercised
        v += rng.normal(0, 0.1, v.shape)
    x, y, mask = check_batch(vocab_size, batch, length, seed + 2)
    h0 = rng.normal(0, 0.5, (cfg.num_layers, batch, cfg.hidden))
    c0 = rng.normal(0, 0.5, (cfg.num_layers, batch, cfg.hidden))

    static = (length, batch) if cfg.backend == "jax" else None
    f_loss, f_grad = build_param_fns({k: v.shape for k, v in values.items()}, cfg, mode, static, masks=True)
    data = [x, y, mask, h0, c0] + draw_masks(np.random.default_rng(seed + 4), cfg, vocab_size, length, batch)
    names = list(values)
    symbolic = dict(zip(names, (np.asarray(g) for g in f_grad(*values.values(), *data))))

    def loss_at(name, index, delta):
        trial = dict(values)
        trial[name] = values[name].copy()
        trial[name][index] += delta
        return float(f_loss(*trial.values(), *data))

    rows = []
    for name in names:
        shape = values[name].shape
        all_idx = list(np.ndindex(shape))
        if len(all_idx) > max_entries:
            pick = np.random.default_rng(seed + 3).choice(len(all_idx), max_entries, replace=False)
            all_idx = [all_idx[i] for i in sorted(pick)]
        abs_err = rel_err = 0.0
        for idx in all_idx:
            numeric = (loss_at(name, idx, step) - loss_at(name, idx, -step)) / (2 * step)
            analytic = symbolic[name][idx]
            diff = abs(analytic - numeric)
            abs_err = max(abs_err, diff)
            rel_err = max(rel_err, diff / max(abs(analytic) + abs(numeric), 1e-8))
        rows.append({"parameter": name, "shape": list(shape), "entries": len(all_idx), "max_abs_error": float(abs_err),
                     "max_rel_error": float(rel_err), "passed": bool(rel_err <= TOLERANCE)})
    return rows


def bf16_gradient_check(cfg: ModelConfig, vocab_size: int = 6, batch: int = 3, length: int = 4,
                        seed: int = 0) -> list[dict]:
    """The bf16 path's gradients against the float64 analytic gradient of the same computation.

    The bf16 path: float32 parameters, every matrix product a Bf16Dot (its factors rounded to
    bf16, its gradient two more Bf16Dots, which round the upstream gradient too), compiled on
    cfg.backend. The reference: the same model in float64 whose products multiply bf16-rounded
    factors exactly (`precision.reference_dot`), differentiated by `pytensor.grad` through a
    rounding whose gradient is the identity. Central differences cannot check a rounded function
    (it is a staircase), so this is the check the issue asks for. The error of a tensor is
    max |a - r| / max |r|; it passes at BF16_TOLERANCE.
    """
    ref_cfg = dataclasses.replace(cfg, dtype="float64", precision="bf16-reference", onednn_lstm="off",
                                  onednn_matmul="off")
    run_cfg = dataclasses.replace(cfg, dtype="float32", precision="bf16")
    values = M.init_params(vocab_size, ref_cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for v in values.values():
        v += rng.normal(0, 0.1, v.shape)
    x, y, mask = check_batch(vocab_size, batch, length, seed + 2)
    h0 = rng.normal(0, 0.5, (cfg.num_layers, batch, cfg.hidden))
    c0 = rng.normal(0, 0.5, (cfg.num_layers, batch, cfg.hidden))
    drop = draw_masks(np.random.default_rng(seed + 4), ref_cfg, vocab_size, length, batch)
    grads = {}
    for c in (ref_cfg, run_cfg):
        static = (length, batch) if c.backend == "jax" else None
        _, f = build_param_fns({k: v.shape for k, v in values.items()}, c, get_mode(c.backend), static, masks=True,
                               want=("grads",))
        data = [v.astype(c.dtype) for v in values.values()] + [x, y, mask.astype(c.dtype), h0.astype(c.dtype),
                                                               c0.astype(c.dtype)] + [m.astype(c.dtype) for m in drop]
        grads[c.precision] = [np.asarray(g, np.float64) for g in f(*data)]
    rows = []
    for name, a, r in zip(values, grads["bf16"], grads["bf16-reference"]):
        err = float(np.abs(a - r).max() / max(np.abs(r).max(), 1e-12))
        rows.append({"parameter": name, "shape": list(r.shape), "max_rel_error": err,
                     "passed": bool(err <= BF16_TOLERANCE)})
    return rows


AWD = {"dropout_embed": 0.3, "dropout_input": 0.3, "dropout_hidden": 0.3, "dropout_output": 0.3,
       "weight_dropout": 0.3}  # every dropout of the regularised recipe, as fixed masks


def standard_models(backend: str = "jax", hidden: int = 5, embedding: int = 4):
    """The models `symlstm gradcheck` checks by default: each cell with 1 and 2 layers; the
    regularised LSTM: tied output with a projection (H ≠ E) and without (H = E), every dropout on;
    two LSTMs through the LSTM layer Op (`lstm_op`, its backward written by hand): the plain
    2-layer one and the tied one with every dropout; and the Mogrifier LSTM, 2 layers of 5 rounds.
    (Its dropouts are the LSTM's, applied outside the step; with them, some of its rounds' gradient
    entries fall near 1e-7, where central differences' rounding, ≈ 1e-12, is above the tolerance.)"""
    base = dict(dtype="float64", backend=backend, init="uniform", init_scale=0.5)
    plain = [ModelConfig(cell=cell, num_layers=layers, hidden=hidden, embedding=embedding, **base)
             for cell in ("lstm", "gru", "rnn") for layers in (1, 2)]
    tied = [ModelConfig(cell="lstm", num_layers=2, hidden=h, embedding=embedding, tie_weights=True, **AWD, **base)
            for h in (hidden, embedding)]
    mogrifier = dataclasses.replace(plain[1], cell="mogrifier", mogrifier_rounds=5)
    return plain + tied + [dataclasses.replace(c, lstm_op=True) for c in (plain[1], tied[0])] + [mogrifier]


def onednn_models(backend: str = "jax", hidden: int = 5, embedding: int = 4) -> tuple[list, str]:
    """The models whose LSTM layers train through oneDNN's primitive (`model.onednn_lstm`) with
    their output layers on oneDNN's matmul (`model.onednn_matmul`), and why there are none where
    there are none: the two `standard_models` checks through the LSTM layer Op (the plain 2-layer
    LSTM and the tied one with every dropout). oneDNN computes in float32 and bf16 only, so they
    get the bf16 check (its bf16 path against the float64 reference), not central differences;
    hence only where oneDNN makes a bf16 LSTM here (`onednn.runs`)."""
    if backend != "jax":
        return [], f"oneDNN's primitives run on the jax backend only, not {backend}"
    if machine.jax_platform() != "cpu":
        return [], f"JAX compiles for {machine.jax_platform()}, and oneDNN's custom calls are registered for the CPU only"
    ok, why = onednn.runs("lstm", bf16=True)
    if not ok:
        return [], why
    return [dataclasses.replace(c, lstm_op=False, onednn_lstm="on", onednn_matmul="auto")
            for c in standard_models(backend, hidden, embedding) if c.lstm_op], ""


def model_id(cfg: ModelConfig) -> str:
    """A short name of a checked model, as the tests and the report list it."""
    return f"{cfg.cell}-L{cfg.num_layers}-H{cfg.hidden}" + "-tied-dropout" * cfg.tie_weights + "-op" * cfg.lstm_op \
        + "-onednn" * (cfg.onednn_lstm == "on")
