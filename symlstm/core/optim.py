"""Optimizers as pure functions from symbolic gradients to update pairs.

State lives in shared variables named after their parameter (`layer0/W.m`), created once by
`init_state` so that several compiled training functions (one per static shape on JAX) share it,
and so the checkpoint can save it for an exact resume. Learning-rate schedules are plain Python.
"""
import math

import numpy as np
import pytensor
import pytensor.tensor as pt

from symlstm.config import TrainConfig, choices

SLOTS = {"sgd": (), "momentum": ("v",), "adam": ("m", "v"), "rmsprop": ("ms",), "adadelta": ("eg", "ex")}
choices("train", "optimizer", SLOTS)  # the one list of optimizer names


def init_state(params: dict, optimizer: str, average: bool = False) -> dict:
    """Zeroed optimizer state: name -> shared variable, for `params` (name -> shared). With
    `average`, the weight average of `average_updates` too: `<param>.avg`, starting at the
    parameters' values, and its step count `avg.t`."""
    state = {}
    dtype = next(iter(params.values())).dtype
    for name, p in params.items():
        value = p.get_value()
        for slot in SLOTS[optimizer]:
            state[f"{name}.{slot}"] = pytensor.shared(np.zeros_like(value), name=f"{name}.{slot}")
        if average:
            state[f"{name}.avg"] = pytensor.shared(np.array(value, copy=True), name=f"{name}.avg")
    if optimizer == "adam":
        state["t"] = pytensor.shared(np.array(0, dtype=dtype), name="t")
    if average:
        state["avg.t"] = pytensor.shared(np.array(0, dtype=dtype), name="avg.t")
    return state


def average_updates(upd: list, state: dict, beta: float) -> list:
    """Update pairs for an exponential moving average of the parameters, taken after the step's
    own `upd` (Polyak & Juditsky 1992; the "EMA" of Adam's paper, §7.2, and of nanoGPT-style recipes):

        β_t = min(β, (1 + t) / (10 + t))        t: averaging steps taken before this one
        avg ← β_t avg + (1 - β_t) p_new

    β_t is small at first (tf.train.ExponentialMovingAverage's num_updates), so the average
    forgets the random initial weights within the first steps instead of over 1/(1-β) of them."""
    t = state["avg.t"]
    dtype = t.dtype
    rate = pt.minimum(np.asarray(beta, dtype), (1 + t) / (10 + t))
    out = [(t, t + 1)]
    for p, new in upd:
        avg = state.get(f"{p.name}.avg")
        if avg is not None:
            out.append((avg, (rate * avg + (1 - rate) * new).astype(avg.dtype)))
    return out


def is_average(key: str) -> bool:
    """Whether a state entry belongs to the weight average (`<param>.avg`, `avg.t`), not the optimizer."""
    return key.endswith(".avg") or key == "avg.t"


def checkpoint_arrays(params: dict, state: dict) -> tuple[dict, dict]:
    """(params, optimizer) as a checkpoint stores them. With a weight average the checkpoint's
    parameters are the average, which evaluation and sampling load; the weights being trained go
    with the optimizer state as `<param>.trained`, for --resume. `resumed_arrays` undoes it."""
    if "avg.t" not in state:
        return params, state
    optimizer = {k: v for k, v in state.items() if not k.endswith(".avg")}
    optimizer.update({f"{k}.trained": v for k, v in params.items()})
    return {k: state[f"{k}.avg"] for k in params}, optimizer


def resumed_arrays(params: dict, optimizer: dict, average: bool) -> tuple[dict, dict]:
    """The checkpoint's (params, optimizer) back as (trained parameters, optimizer state), with the
    state's average when `average` (the run resumed with weight averaging on)."""
    if not any(k.endswith(".trained") for k in optimizer):
        return params, optimizer  # no average was saved: one starts, if asked, at these parameters
    state = {k: v for k, v in optimizer.items() if not k.endswith(".trained")}
    if average:
        state.update({f"{k}.avg": v for k, v in params.items()})
    else:
        state.pop("avg.t", None)
    return {k: optimizer[f"{k}.trained"] for k in params}, state


def clip_by_global_norm(grads: dict, max_norm: float, dtype: str):
    """Scale all gradients by min(1, max_norm / ‖g‖₂) over all of them; returns (grads, norm)."""
    norm = pt.sqrt(sum((g ** 2).sum(acc_dtype=dtype) for g in grads.values()))
    if max_norm <= 0:
        return grads, norm
    scale = pt.minimum(1, np.asarray(max_norm, dtype) / pt.maximum(norm, np.asarray(1e-12, dtype)))
    return {k: g * scale for k, g in grads.items()}, norm


def updates(params: dict, grads: dict, state: dict, lr, cfg: TrainConfig) -> list:
    """Update pairs (shared, new value) for one step of cfg.optimizer at learning rate `lr`."""
    dtype = next(iter(params.values())).dtype

    def c(x):
        return np.asarray(x, dtype=dtype)

    out = []
    if cfg.optimizer == "adam":
        t = state["t"] + 1
        out.append((state["t"], t))
        correct1, correct2 = 1 - c(cfg.beta1) ** t, 1 - c(cfg.beta2) ** t
    for name, p in params.items():
        g = grads[name]
        if cfg.optimizer == "sgd":
            new = p - lr * g
        elif cfg.optimizer == "momentum":  # v = μ v - lr g;  p = p + v
            v = state[f"{name}.v"]
            v_new = c(cfg.momentum) * v - lr * g
            out.append((v, v_new))
            new = p + v_new
        elif cfg.optimizer == "adam":  # Kingma & Ba (2015), Algorithm 1
            m, v = state[f"{name}.m"], state[f"{name}.v"]
            m_new = c(cfg.beta1) * m + c(1 - cfg.beta1) * g
            v_new = c(cfg.beta2) * v + c(1 - cfg.beta2) * g ** 2
            out += [(m, m_new), (v, v_new)]
            new = p - lr * (m_new / correct1) / (pt.sqrt(v_new / correct2) + c(cfg.eps))
            # AdamW (Loshchilov & Hutter 2019): p -= lr λ p, apart from g
            if cfg.weight_decay and decays(name, cfg.decay_embedding):
                new = new - lr * c(cfg.weight_decay) * p
        elif cfg.optimizer == "rmsprop":  # Tieleman & Hinton: ms = ρ ms + (1-ρ) g²
            ms = state[f"{name}.ms"]
            ms_new = c(cfg.decay) * ms + c(1 - cfg.decay) * g ** 2
            out.append((ms, ms_new))
            new = p - lr * g / (pt.sqrt(ms_new) + c(cfg.eps))
        elif cfg.optimizer == "adadelta":  # Zeiler (2012), as in the Theano LSTM tutorial
            eg, ex = state[f"{name}.eg"], state[f"{name}.ex"]
            eg_new = c(cfg.decay) * eg + c(1 - cfg.decay) * g ** 2
            dx = -pt.sqrt(ex + c(cfg.eps)) / pt.sqrt(eg_new + c(cfg.eps)) * g
            ex_new = c(cfg.decay) * ex + c(1 - cfg.decay) * dx ** 2
            out += [(eg, eg_new), (ex, ex_new)]
            new = p + dx
        else:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}")
        out.append((p, new.astype(p.dtype)))
    return out


def decays(name: str, embedding: bool = True) -> bool:
    """Whether weight decay applies to a parameter: the matrices (W, U, the output matrix and
    projection, and the embedding, tied or not, unless `embedding` is false), not the biases, as
    AdamW is usually set up (nanoGPT)."""
    return not name.endswith("/b") and (embedding or name != "embedding")


def learning_rate(cfg: TrainConfig, step: int, epoch: int, total_steps: int, elapsed: float = 0.0) -> float:
    """The scheduled rate at a 0-based step within 0-based `epoch`, `elapsed` seconds of training
    in. The cosine and the linear decay ("Budgeted training", Li et al. 2020) run to zero over
    total_steps or, with a time budget, over the budget, whichever comes first: a run stopped by its
    budget ends on a small rate, not in the middle of its decay. Both warm up linearly first. With
    `decay_fraction` f < 1 the rate stays at its peak until the last fraction f of the run and decays
    over that fraction only (warmup-stable-decay, the "trapezoid" of Zhai et al. 2022 and Hägele et
    al. 2024): a budget-limited run learns at the full rate for longer and still ends annealed."""
    lr = cfg.learning_rate
    if cfg.schedule == "step":  # char-rnn: decay every epoch after decay_after
        return lr * cfg.decay_rate ** max(0, epoch + 1 - cfg.decay_after)
    if cfg.schedule in ("cosine", "linear"):
        if step < cfg.warmup_steps:
            return lr * (step + 1) / cfg.warmup_steps
        span = max(1, total_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        if cfg.time_budget:
            progress = max(progress, min(1.0, elapsed / cfg.time_budget))
        progress = max(0.0, (progress - (1 - cfg.decay_fraction)) / cfg.decay_fraction)
        if cfg.schedule == "linear":
            return lr * (1 - progress)
        return lr * 0.5 * (1 + math.cos(math.pi * progress))
    return lr
