"""Compiling the model's graphs into callable functions (the process set-up for a backend is
`backend/runtime.py`).

The build_* helpers below are where the model's graphs meet `pytensor.function`; outside this
module only the gradient-flow probe (`tools/gradflow.build_gradflow_fn`) compiles a graph of its
own. `compile_model` builds the model's functions on demand. The returned `CompiledModel` checks
the NumPy arrays it is given, draws dropout masks from its own seeded generator (saved in checkpoints), and on the JAX backend keeps one compiled
function per input shape, since JAX compiles for static shapes (a few seconds each). With
`devices` > 1 the training and evaluation steps run data-parallel over that many devices
(`devices.Placement`): their arrays stay on the devices, and hT, cT come back as device arrays.
"""
import contextlib
import dataclasses
import functools
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

from symlstm.backend.devices import Placement, host, resolve
from symlstm.backend.runtime import get_mode
from symlstm.config import ModelConfig, TrainConfig
from symlstm.core import lstm_layer, onednn_lstm, optim, paths, precision
from symlstm.core import model as M
from symlstm.core import sampling as S
from symlstm.errors import InputError
from symlstm.vocab import EOS, PAD


def batch_inputs(cfg, static):
    """Symbolic inputs; with static=(T, B) their shapes are fixed (JAX), else free."""
    T, B = static if static else (None, None)
    L, H, f = cfg.num_layers, cfg.hidden, cfg.dtype
    x = pt.tensor("x", dtype="int32", shape=(T, B))
    y = pt.tensor("y", dtype="int32", shape=(T, B))
    mask = pt.tensor("mask", dtype=f, shape=(T, B))
    h0 = pt.tensor("h0", dtype=f, shape=(L, B, H))
    c0 = pt.tensor("c0", dtype=f, shape=(L, B, H))
    return x, y, mask, h0, c0


def train_graph(params, state, cfg: ModelConfig, tcfg: TrainConfig, static=None):
    """The symbolic training step: (inputs, outputs, updates) for build_train_fn and inspection."""
    x, y, mask, h0, c0 = batch_inputs(cfg, static)
    lr = pt.scalar("lr", dtype=cfg.dtype)
    masks = mask_inputs(cfg, params["embedding"].type.shape[0], static)
    mean, _, _, hT, cT = M.loss_terms(params, cfg, x, y, mask, h0, c0, masks)
    mean, hT, cT = differentiable(cfg, [mean, hT, cT])
    grads = dict(zip(params, pytensor.grad(mean, list(params.values()))))
    grads, norm = optim.clip_by_global_norm(grads, tcfg.grad_clip, cfg.dtype)
    upd = optim.updates(params, grads, state, lr, tcfg)
    if tcfg.ema:
        upd += optim.average_updates(upd, state, tcfg.ema)
    return [x, y, mask, h0, c0, lr] + list(masks.values()), [mean, norm, hT, cT], upd


def differentiable(cfg: ModelConfig, outputs: list) -> list:
    """The graph of `outputs` as `pytensor.grad` will differentiate it: where `paths.decide` sends
    the LSTM layers through oneDNN, each LSTM layer's scan replaced by oneDNN's fused primitive
    (`onednn_lstm.substitute`); with `lstm_op`, by the LSTM layer Op, whose gradient is written out
    by hand (`lstm_layer.substitute`); else as built. Where it sends the bf16 products over all
    steps to oneDNN's matmul, those left outside the recurrence run there (`precision.with_onednn`)."""
    asks = (cfg.onednn_lstm, cfg.onednn_matmul) != ("off", "off")
    chosen = paths.decide(cfg) if asks else None  # only then: asking oneDNN loads it, and JAX
    if chosen and chosen.onednn_lstm:
        outputs = onednn_lstm.substitute(outputs)
    if chosen and chosen.onednn_matmul:
        outputs = precision.with_onednn(outputs)
    return lstm_layer.substitute(outputs) if cfg.lstm_op and cfg.cell == "lstm" else outputs


def mask_inputs(cfg: ModelConfig, vocab_size, static=None) -> dict:
    """The dropout masks of `model.mask_shapes` as symbolic inputs, in its order."""
    T, B = static if static else (None, None)
    return {k: pt.tensor(f"mask_{k}", dtype=cfg.dtype, shape=s)
            for k, s in M.mask_shapes(cfg, vocab_size, T, B).items()}


def draw_masks(rng: np.random.Generator, cfg: ModelConfig, vocab_size: int, T: int, B: int) -> list:
    """Fresh dropout multipliers for one batch, in `mask_shapes`' order: 0 with the key's
    probability p, else 1/(1-p) (inverted dropout: evaluation needs no rescaling).

    Drawn as 32-bit integers u, kept where u ≥ round(p·2³²): p is exact to 2⁻³². Inside every
    training step, so its cost is the step's: at poems.yaml's keys (two 512 × 2048 weight-drop masks
    among them) this takes less than half the time of `rng.random(shape) >= p` and its float64 division."""
    out = []
    for k, shape in M.mask_shapes(cfg, vocab_size, T, B).items():
        p = M.mask_probability(cfg, k)
        keep = rng.integers(0, 2**32, shape, dtype=np.uint32) >= np.uint32(min(round(p * 2**32), 2**32 - 1))
        out.append(keep.astype(cfg.dtype) * np.asarray(1 / (1 - p), cfg.dtype))
    return out


def build_train_fn(params, state, cfg: ModelConfig, tcfg: TrainConfig, mode, static=None):
    """(x, y, mask, h0, c0, lr[, masks...]) -> (mean loss, grad norm, hT, cT); updates params and state."""
    inputs, outputs, upd = train_graph(params, state, cfg, tcfg, static)
    return pytensor.function(inputs, outputs, updates=upd, mode=mode, name="train_step",
                             on_unused_input="ignore")  # adadelta has no lr


def build_param_fns(shapes: dict, cfg: ModelConfig, mode, static=None, masks: bool = False,
                    want=("loss", "grads")):
    """(loss, gradients) as two functions of (parameter values..., x, y, mask, h0, c0[, masks...]),
    in the order of `shapes` (name -> shape): the parameters are inputs rather than shared
    variables, so that a gradient check can evaluate the loss at perturbed values. With masks=True
    the dropout masks of `model.mask_shapes` are inputs too (fixed while the check perturbs).
    Nothing is updated. Only the functions named in `want` are compiled (the other is None):
    compiling is most of a small check's time."""
    x, y, mask, h0, c0 = batch_inputs(cfg, static)
    params = {k: pt.tensor(k, dtype=cfg.dtype, shape=s) for k, s in shapes.items()}
    drop = mask_inputs(cfg, shapes["embedding"][0], static) if masks else {}
    loss = differentiable(cfg, M.loss_terms(params, cfg, x, y, mask, h0, c0, drop)[:1])[0]
    inputs = list(params.values()) + [x, y, mask, h0, c0] + list(drop.values())
    f_loss = pytensor.function(inputs, loss, mode=mode, name="param_loss") if "loss" in want else None
    if "grads" not in want:
        return f_loss, None
    grads = pytensor.grad(loss, list(params.values()))
    return f_loss, pytensor.function(inputs, grads, mode=mode, name="param_grads")


def build_eval_fn(params, cfg: ModelConfig, mode, static=None):
    """(x, y, mask, h0, c0) -> (summed NLL, token count, hT, cT); no updates, no dropout.
    Always float32 products: `precision: bf16` speeds training up, while the model that is
    validated, tested and sampled is its float32 parameters, computed in float32."""
    cfg = dataclasses.replace(cfg, precision="float32")
    x, y, mask, h0, c0 = batch_inputs(cfg, static)
    _, total, count, hT, cT = M.loss_terms(params, cfg, x, y, mask, h0, c0)
    return pytensor.function([x, y, mask, h0, c0], [total, count, hT, cT], mode=mode, name="evaluate")


def build_step_fn(params, cfg: ModelConfig, mode, batch=None):
    """(tokens (B,), h (L, B, H), c (L, B, H)) -> (log-probabilities (B, V), h, c)."""
    _, _, _, h, c = batch_inputs(cfg, (None, batch) if batch else None)
    tokens = pt.tensor("tokens", dtype="int32", shape=(batch,))
    logits, h1, c1 = M.single_step(params, cfg, tokens, h, c)
    return pytensor.function([tokens, h, c], [pt.special.log_softmax(logits, axis=-1), h1, c1],
                             mode=mode, name="step")


def build_generate_fn(params, cfg: ModelConfig, mode, static=None):
    """(first (B,), h, c, noise (N, B, V), inverse temperature, banned (V,)) -> tokens (N, B), h, c."""
    N, B = static if static else (None, None)
    _, _, _, h, c = batch_inputs(cfg, (None, B))
    first = pt.tensor("first", dtype="int32", shape=(B,))
    noise = pt.tensor("noise", dtype=cfg.dtype, shape=(N, B, None))
    inv_t = pt.scalar("inv_temperature", dtype=cfg.dtype)
    banned = pt.vector("banned", dtype=cfg.dtype)
    tokens, h1, c1 = S.generate_scan(params, cfg, first, h, c, noise, inv_t, banned,
                                     EOS, PAD)
    return pytensor.function([first, h, c, noise, inv_t, banned], [tokens, h1, c1], mode=mode, name="generate")


def build_form_fn(params, cfg: ModelConfig, mode, static=None, masks=False, greedy=False):
    """(first (B,), h, c, uniform (N, B), inverse temperature, layout (N, V), tone_ok (N, P, V),
    rhyme_at (N, P), first_rhyme (V,), group_of (V,)) -> tokens, log-probabilities (N, B)[,
    allowed masks (N, B, V) with masks=True]; see sampling.generate_in_form. Static shapes: (N, B, P);
    greedy (argmax instead of a draw) builds a graph of its own."""
    N, B, P = static if static else (None, None, None)
    _, _, _, h, c = batch_inputs(cfg, (None, B))
    first = pt.tensor("first", dtype="int32", shape=(B,))
    uniform = pt.tensor("uniform", dtype=cfg.dtype, shape=(N, B))
    inv_t = pt.scalar("inv_temperature", dtype=cfg.dtype)
    layout = pt.tensor("layout", dtype="bool", shape=(N, None))
    tone_ok = pt.tensor("tone_ok", dtype="bool", shape=(N, P, None))
    rhyme_at = pt.tensor("rhyme_at", dtype="bool", shape=(N, P))
    first_rhyme = pt.vector("first_rhyme", dtype="bool")
    group_of = pt.vector("group_of", dtype="int32")
    inputs = [first, h, c, uniform, inv_t, layout, tone_ok, rhyme_at, first_rhyme, group_of]
    tokens, logp, allowed = S.generate_in_form(params, cfg, *inputs, greedy=greedy)
    return pytensor.function(inputs, [tokens, logp] + ([allowed] if masks else []), mode=mode, name="generate_in_form")


class CompiledModel:
    """Compiled training, evaluation, single-step and generation functions over shared parameters.

    Arrays are time-major: x, y (T, B) int32; mask (T, B) and states (L, B, H) in cfg.dtype.
    """

    def __init__(self, params: dict, cfg: ModelConfig, tcfg: TrainConfig | None = None, seed: int = 0,
                 devices: int = 1):
        self.mode = get_mode(cfg.backend)
        cfg = dataclasses.replace(cfg, precision=precision.resolve(cfg.precision, cfg.backend))
        n = resolve(devices, cfg.backend)
        self.placement = Placement(n) if n > 1 else None
        if self.placement:  # oneDNN's custom calls have no sharding rules: XLA's ops take over (`paths`)
            paths.decide(cfg, self.placement.n)  # an `on` is refused here, in one line
            cfg = dataclasses.replace(cfg, onednn_lstm="off", onednn_matmul="off")
        self.cfg, self.tcfg = cfg, tcfg or TrainConfig()
        self.static = cfg.backend == "jax"
        self.vocab_size = params["embedding"].shape[0]
        self.params = M.to_shared(params)
        self.rng = np.random.default_rng(seed)  # dropout masks
        self._fns = {}
        self._ran = set()  # (T, B) shapes the training step has run at: compiled
        self._tables = None  # the last constraint tables and their device copies

    @functools.cached_property
    def paths(self) -> paths.Paths:
        """Which path each part of the training graph takes here (`paths.decide`), decided at the
        first training step: evaluation and sampling run none of oneDNN's kernels, so a checkpoint
        trained with `onednn_lstm: on` samples on any machine, while training it where oneDNN cannot
        run is refused in one line."""
        return paths.decide(self.cfg, self.placement.n if self.placement else 1)

    @functools.cached_property
    def state(self) -> dict:
        """Optimizer state (name -> shared), made at first use: sampling and evaluation need none.
        With `train.ema` it holds the weight average too (`optim.average_updates`)."""
        return optim.init_state(self.params, self.tcfg.optimizer, average=self.tcfg.ema > 0)

    @contextlib.contextmanager
    def averaged(self):
        """Within this block the parameters are the weight average (`train.ema`): evaluation,
        sampling and `get_params` see it. The two sets trade places, not copies; without an average
        this changes nothing. Train no step inside."""
        pairs = [(self.params[k], self.state[f"{k}.avg"]) for k in self.params] if self.tcfg.ema else []

        def trade():
            for p, a in pairs:
                p.container.storage[0], a.container.storage[0] = a.container.storage[0], p.container.storage[0]
        trade()
        try:
            yield self
        finally:
            trade()

    # -- plumbing -------------------------------------------------------------------------------
    def _fn(self, kind, key, build):
        key = (kind, key if self.static else None)
        if key not in self._fns:
            self._fns[key] = build(key[1])
            if self.placement and kind in ("train", "eval"):
                self._fns[key].trust_input = True  # device arrays go in as they are, not through NumPy
        return self._fns[key]

    def _on_devices(self, with_state: bool):
        """Replicate parameters (and optimizer state) on every device where they are host arrays
        (new, or set from NumPy); after a step they are the step's device outputs already."""
        for v in list(self.params.values()) + (list(self.state.values()) if with_state else []):
            if not isinstance(v.container.storage[0], self.placement.jax.Array):
                v.container.storage[0] = self.placement.replicate(v.container.storage[0])

    def _split(self, *arrays):
        """Batch arrays (batch on axis 1) onto the devices; rows split evenly, else replicated."""
        put = self.placement.split if arrays[0].shape[1] % self.placement.n == 0 else self.placement.replicate
        return [put(a) for a in arrays]

    def _check(self, name, a, kind, shape):
        if self.placement and kind == "float" and isinstance(a, self.placement.jax.Array):
            a = np.empty(a.shape, a.dtype)  # a state left on the devices by the previous step: check its shape
        if not isinstance(a, np.ndarray):
            raise InputError(f"{name}: expected a NumPy array, got {type(a).__name__}")
        if kind == "int":
            if a.dtype.kind not in "iu":
                raise InputError(f"{name}: expected an integer array of token ids, got dtype {a.dtype}")
            if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
                raise InputError(f"{name}: token ids must lie in [0, {self.vocab_size}), got {a.min()}..{a.max()}")
            a = a.astype(np.int32, copy=False)
        elif a.dtype != self.cfg.dtype:
            raise InputError(f"{name}: expected dtype {self.cfg.dtype} (the model's), got {a.dtype}; "
                            f"use .astype('{self.cfg.dtype}')")
        if a.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, a.shape)):
            want = "(" + ", ".join("?" if s is None else str(s) for s in shape) + ")"
            raise InputError(f"{name}: expected shape {want}, got {a.shape}")
        return a

    def _check_batch(self, x, y, mask, h0, c0, rows: bool = False):
        """The batch checked; rows=True: x, y, mask (and host states) hold this process's rows of a
        run of several processes, while states on the devices hold the whole batch's."""
        x = self._check("x", x, "int", (None, None))
        T, B = x.shape
        if T == 0 or B == 0:
            raise InputError(f"x: empty batch of shape {x.shape}")
        L, H = self.cfg.num_layers, self.cfg.hidden
        y, mask = self._check("y", y, "int", (T, B)), self._check("mask", mask, "float", (T, B))
        for name, state in (("h0", h0), ("c0", c0)):
            whole = rows and isinstance(state, self.placement.jax.Array)
            self._check(name, state, "float", (L, B * self.placement.processes if whole else B, H))
        return x, y, mask, h0, c0

    def zero_state(self, batch: int):
        """Zero initial states (h0, c0), each (L, B, H)."""
        shape = (self.cfg.num_layers, batch, self.cfg.hidden)
        return np.zeros(shape, self.cfg.dtype), np.zeros(shape, self.cfg.dtype)

    # -- the functions ----------------------------------------------------------------------------
    def train_step(self, x, y, mask, h0, c0, lr=None):
        """One optimizer step on a batch: returns (mean loss, gradient norm, hT, cT). In a run of
        several processes each passes only its own rows (`Placement.rows` of the global batch),
        which hold the same number of rows in every process."""
        several = bool(self.placement and self.placement.processes > 1)
        x, y, mask, h0, c0 = self._check_batch(x, y, mask, h0, c0, rows=several)
        drawn = self.rng.bit_generator.state
        before = [v.container.storage[0] for v in list(self.params.values()) + list(self.state.values())]
        try:
            return self._train_step(x, y, mask, h0, c0, lr)
        except BaseException:  # a step that did not happen: the parameters, the optimizer state and the
            self.rng.bit_generator.state = drawn  # dropout generator as before it, so that a run saved now
            for v, value in zip(list(self.params.values()) + list(self.state.values()), before):  # resumes
                v.container.storage[0] = value  # exactly (its outputs may never be computed)
            raise

    def _train_step(self, x, y, mask, h0, c0, lr):
        if self.placement and self.placement.processes > 1:
            return self._train_rows(x, y, mask, h0, c0, lr)
        if self.paths.onednn_lstm and not onednn_lstm.suffix_padded(mask):
            raise InputError("mask: model.onednn_lstm trains on rows padded at their end only (each row's mask "
                             "1s then 0s): oneDNN's LSTM has no mask")
        lr = self.tcfg.learning_rate if lr is None else lr
        fn = self._fn("train", x.shape, lambda s: build_train_fn(
            self.params, self.state, self.cfg, self.tcfg, self.mode, s))
        self._ran.add(x.shape)
        keep = draw_masks(self.rng, self.cfg, self.vocab_size, *x.shape)
        lr = np.asarray(lr, self.cfg.dtype)
        if self.placement is None:
            loss, norm, hT, cT = fn(x, y, mask, h0, c0, lr, *keep)
            return float(loss), float(norm), np.asarray(hT), np.asarray(cT)
        self.placement.check_batch(x.shape[1])
        self._on_devices(with_state=True)
        names = M.mask_shapes(self.cfg, self.vocab_size)
        per_row = [k for k, n in zip(keep, names) if n.startswith("keep")]  # (T, B, H): split like the batch
        whole = [self.placement.replicate(k) for k, n in zip(keep, names) if not n.startswith("keep")]
        x, y, mask, h0, c0, *per_row = self._split(x, y, mask, h0, c0, *per_row)
        keep = per_row + whole  # mask_shapes' order: the keep{l} come first
        loss, norm, hT, cT = fn(x, y, mask, h0, c0, self.placement.replicate(lr), *keep)
        return self.placement.scalar(loss), self.placement.scalar(norm), hT, cT

    def _train_rows(self, x, y, mask, h0, c0, lr):
        """`train_step` of a run of several processes, on this process's rows of the batch."""
        P = self.placement
        T, B = x.shape[0], x.shape[1] * P.processes  # the global batch
        P.check_batch(B)
        lr = np.asarray(self.tcfg.learning_rate if lr is None else lr, self.cfg.dtype)
        fn = self._fn("train", (T, B), lambda s: build_train_fn(self.params, self.state, self.cfg, self.tcfg,
                                                               self.mode, s))
        self._ran.update({(T, B), x.shape})  # `warm_up` asks by this process's rows
        mine = P.rows(B)
        keep = draw_masks(self.rng, self.cfg, self.vocab_size, T, B)  # the whole batch's, as one process draws them
        self._on_devices(with_state=True)
        names = M.mask_shapes(self.cfg, self.vocab_size)
        per_row = [P.gather_rows(k[:, mine], B) for k, n in zip(keep, names) if n.startswith("keep")]
        whole = [P.replicate(k) for k, n in zip(keep, names) if not n.startswith("keep")]
        states = [P.split(s) if isinstance(s, P.jax.Array) else P.gather_rows(s, B) for s in (h0, c0)]
        batch = [P.gather_rows(a, B) for a in (x, y, mask)]
        loss, norm, hT, cT = fn(*batch, *states, P.replicate(lr), *per_row, *whole)
        return P.scalar(loss), P.scalar(norm), hT, cT

    def evaluate(self, x, y, mask, h0, c0):
        """Summed NLL (nats) and token count of a batch, without updates: (total, count, hT, cT)."""
        x, y, mask, h0, c0 = self._check_batch(x, y, mask, h0, c0)
        fn = self._fn("eval", x.shape, lambda s: build_eval_fn(self.params, self.cfg, self.mode, s))
        if self.placement is None:
            total, count, hT, cT = fn(x, y, mask, h0, c0)
            return float(total), float(count), np.asarray(hT), np.asarray(cT)
        self._on_devices(with_state=False)
        total, count, hT, cT = fn(*self._split(x, y, mask, h0, c0))
        return self.placement.scalar(total), self.placement.scalar(count), hT, cT

    def step(self, tokens, h, c):
        """Feed one token per row: tokens (B,) -> (log-probabilities (B, V), h, c)."""
        tokens = self._check("tokens", tokens, "int", (None,))
        L, B, H = self.cfg.num_layers, tokens.shape[0], self.cfg.hidden
        h, c = self._check("h", h, "float", (L, B, H)), self._check("c", c, "float", (L, B, H))
        fn = self._fn("step", B, lambda b: build_step_fn(self.params, self.cfg, self.mode, b))
        logp, h, c = fn(tokens, h, c)
        return np.asarray(logp), np.asarray(h), np.asarray(c)

    def generate(self, first, h, c, noise, temperature=1.0, banned=None):
        """Generate noise.shape[0] tokens per row in one compiled scan; see sampling.generate_scan."""
        first = self._check("first", first, "int", (None,))
        B = first.shape[0]
        noise = self._check("noise", noise, "float", (None, B, self.vocab_size))
        banned = np.zeros(self.vocab_size, self.cfg.dtype) if banned is None else banned.astype(self.cfg.dtype)
        fn = self._fn("generate", noise.shape[:2], lambda s: build_generate_fn(self.params, self.cfg, self.mode, s))
        tokens, h, c = fn(first, h, c, noise, np.asarray(1.0 / temperature, self.cfg.dtype), banned)
        return np.asarray(tokens), np.asarray(h), np.asarray(c)

    def generate_in_form(self, first, h, c, uniform, tables, temperature=1.0, greedy=False, masks=False):
        """Generate a poem of a form per row in one compiled scan under `tables`
        (`Constraints.tables()`); see sampling.generate_in_form. Returns (tokens (N, B), their
        log-probabilities (N, B)) and with masks=True the allowed masks (N, B, V) too."""
        first = self._check("first", first, "int", (None,))
        uniform = self._check("uniform", uniform, "float", (None, first.shape[0]))
        L, B, H = self.cfg.num_layers, first.shape[0], self.cfg.hidden
        h, c = self._check("h", h, "float", (L, B, H)), self._check("c", c, "float", (L, B, H))
        key = (uniform.shape[0], B, tables[1].shape[1])
        fn = self._fn(("form", masks, greedy), key,
                      lambda s: build_form_fn(self.params, self.cfg, self.mode, s, masks, greedy))
        fn.trust_input = self.static  # checked above; the tables go in as device arrays, not via NumPy
        out = fn(first, h, c, uniform, np.asarray(1.0 / temperature, self.cfg.dtype), *self._on_device(tables))
        return tuple(np.asarray(a) for a in out)

    def _on_device(self, tables):
        """The constraint tables (≈ 0.8 MB for a 五絕 at V 6,000) as the backend's arrays, copied
        there once per tables object: copying them at every call took much of a poem's time
        (docs/measurements.md, "tables on the device")."""
        if not self.static:
            return tables
        import jax

        if self._tables is None or self._tables[0] is not tables:
            self._tables = (tables, [jax.device_put(np.asarray(t)) for t in tables])
        return self._tables[1]

    def warm_up(self, shapes) -> float:
        """Compile the training step for each (T, B) in `shapes` not run yet, so that no timed step
        pays for compiling (JAX compiles per shape, seconds each; a run of the whole corpus meets
        eleven shapes). One step per shape on a one-token batch, whose effects on the parameters,
        the optimizer state and the dropout generator are then undone. Returns the seconds taken."""
        todo = sorted({tuple(s) for s in shapes} - self._ran) if self.static else []
        if not todo:
            return 0.0
        start = time.perf_counter()
        params, state, rng = self.get_params(), self.get_state(), self.rng.bit_generator.state
        for T, B in todo:
            x, mask = np.zeros((T, B), np.int32), np.zeros((T, B), self.cfg.dtype)
            mask[0, 0] = 1
            self.train_step(x, x, mask, *self.zero_state(B), 0.0)
        self.set_params(params)
        self.set_state(state)
        self.rng.bit_generator.state = rng
        return time.perf_counter() - start

    # -- parameters and state as NumPy ----------------------------------------------------------
    def get_params(self) -> dict[str, np.ndarray]:
        return {k: host(v.get_value()) for k, v in self.params.items()}

    def set_params(self, values: dict):
        for k, v in values.items():
            self.params[k].set_value(np.asarray(v, dtype=self.cfg.dtype))

    def get_state(self) -> dict[str, np.ndarray]:
        return {k: host(v.get_value()) for k, v in self.state.items()}

    def set_state(self, values: dict):
        for k, v in values.items():
            self.state[k].set_value(np.asarray(v, dtype=self.state[k].dtype))


def compile_model(params: dict, cfg: ModelConfig, tcfg: TrainConfig | None = None, seed: int = 0,
                  devices: int = 1) -> CompiledModel:
    """Wrap `params` (name -> NumPy array) as shared variables and return the compiled functions
    (built lazily at first call); devices > 1 (0: every local one) trains data-parallel."""
    return CompiledModel(params, cfg, tcfg, seed, devices)
