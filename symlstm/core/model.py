"""The language model as a symbolic PyTensor graph: parameters, forward pass, loss, one step.

Owns the parameter layout (a dict of NumPy arrays with stable names, which are also the checkpoint's
dataset paths) and the graph built from it. It never opens files and never compiles: `compiled.py`
turns these graphs into functions; the sampling graphs built on `single_step` are `sampling.py`'s.

Shape letters, used in every comment: B batch, T time, E embedding, H hidden, V vocabulary,
L layers, G gate blocks per cell (LSTM 4, GRU 3, RNN 1). Sequences are time-major: (T, B).
"""
import numpy as np
import pytensor
import pytensor.tensor as pt

from symlstm.config import ModelConfig
from symlstm.core.cells import GATES, STEPS, gate_columns, mogrifier_names, mogrifier_rounds, mogrifier_step
from symlstm.core.precision import matmul, matmul_nt
from symlstm.core.xent import softmax_cross_entropy


def param_shapes(vocab_size: int, cfg: ModelConfig) -> dict[str, tuple]:
    """Name -> shape of every parameter: embedding (V, E), layer{l}/W (in, G*H),
    layer{l}/U (H, G*H), layer{l}/b (G*H,), output/W (H, V), output/b (V,); the Mogrifier LSTM
    adds layer{l}/Q1 (H, in), layer{l}/R2 (in, H), Q3 … for its rounds. A tied model
    (`tie_weights`) has no output/W: its output layer is the embedding transposed, after a
    projection output/proj (H, E) when H differs from E."""
    G, H = GATES[cfg.cell], cfg.hidden
    shapes = {"embedding": (vocab_size, cfg.embedding)}
    for layer in range(cfg.num_layers):
        n_in = cfg.embedding if layer == 0 else H
        shapes[f"layer{layer}/W"] = (n_in, G * H)
        shapes[f"layer{layer}/U"] = (H, G * H)
        shapes[f"layer{layer}/b"] = (G * H,)
        if cfg.cell == "mogrifier":  # Q1 (H, in), R2 (in, H), Q3, …: `cells.mogrify`
            for k, name in enumerate(mogrifier_names(layer, cfg.mogrifier_rounds), start=1):
                shapes[name] = (H, n_in) if k % 2 else (n_in, H)
    if not cfg.tie_weights:
        shapes["output/W"] = (H, vocab_size)
    elif H != cfg.embedding:
        shapes["output/proj"] = (H, cfg.embedding)
    shapes["output/b"] = (vocab_size,)
    return shapes


VOCAB_AXES = {"embedding": 0, "output/W": 1, "output/b": 0}  # the parameters indexed by token id: along which axis


def carry_over(saved: dict, saved_itos, fresh: dict, itos) -> tuple[dict, int]:
    """Another model's parameters on this vocabulary (`train.init_from`): every parameter as
    `saved` holds it, but along the token axis (`VOCAB_AXES`) a token takes the saved row of the
    same token (character or special) and keeps its `fresh` row where `saved_itos` lacks it.
    Shapes must agree but for that axis. Returns the parameters and how many tokens were carried."""
    where = {s: i for i, s in enumerate(saved_itos)}
    new_ids = [i for i, s in enumerate(itos) if s in where]  # ids here of the tokens both hold
    old_ids = [where[itos[i]] for i in new_ids]  # and the same tokens' ids there
    out = {}
    for name, value in fresh.items():
        axis = VOCAB_AXES.get(name)
        if axis is None:
            out[name] = np.asarray(saved[name], dtype=value.dtype).copy()
            continue
        mapped = value.copy()  # (V, E), (H, V) or (V,)
        index = [slice(None)] * value.ndim
        source = list(index)
        index[axis], source[axis] = new_ids, old_ids
        mapped[tuple(index)] = np.asarray(saved[name])[tuple(source)]
        out[name] = mapped
    return out, len(new_ids)


def _orthogonal(rng, n_rows, n_cols):
    blocks = []
    for _ in range(0, n_cols, n_rows):
        q, r = np.linalg.qr(rng.normal(size=(n_rows, n_rows)))
        blocks.append(q * np.sign(np.diag(r)))
    return np.concatenate(blocks, axis=1)[:, :n_cols]


def init_params(vocab_size: int, cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded initial parameters in cfg.dtype. Biases are zero except the LSTM forget gate, which
    starts at forget_bias (added to its draw under `init: pytorch`, whose biases are drawn)."""
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in param_shapes(vocab_size, cfg).items():
        if cfg.init == "pytorch":  # nn.Embedding N(0, 1); nn.LSTM and nn.Linear U(±1/√fan), biases too
            bound = 1 / np.sqrt(cfg.hidden)
            value = rng.normal(size=shape) if name == "embedding" else rng.uniform(-bound, bound, size=shape)
        elif name.endswith("/b"):
            value = np.zeros(shape)
        elif cfg.init == "uniform" or name == "embedding":
            value = rng.uniform(-cfg.init_scale, cfg.init_scale, size=shape)
        elif cfg.init == "orthogonal" and name.endswith("/U"):
            value = _orthogonal(rng, *shape)
        else:  # xavier (Glorot uniform), and the input weights under "orthogonal"
            limit = np.sqrt(6.0 / (shape[0] + shape[1]))
            value = rng.uniform(-limit, limit, size=shape)
        params[name] = value
    if cfg.cell in ("lstm", "mogrifier"):
        forget = gate_columns(cfg.cell, "f", cfg.hidden)
        for layer in range(cfg.num_layers):
            params[f"layer{layer}/b"][forget] += cfg.forget_bias
    return {k: v.astype(cfg.dtype) for k, v in params.items()}


def to_shared(params: dict[str, np.ndarray]) -> dict:
    """The one place parameters become shared variables (names kept)."""
    return {name: pytensor.shared(value, name=name, shape=value.shape) for name, value in params.items()}


def carrying_step(step, dot=pt.dot):
    """A scan step for `step` that makes the next step's recurrent term h_t U at its end and
    carries it as a third state, instead of making h_{t-1} U at the start of each step.

    The values are the same. The difference is in the gradient: the scan that `pytensor.grad`
    builds runs the step's graph again, backwards, to get the gate values; with the product carried,
    it reads h_{t-1} U from the forward scan's outputs instead of recomputing one (B, H)×(H, G*H)
    product per step (`symlstm graph` shows one Dot left in the gradient scan, not two): faster
    training steps at both shapes of `make bench` (docs/measurements.md, "carried product").
    `dot` is the matrix product (`precision.matmul`).
    """
    def scan_step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1, U):
        h_t, c_t = step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1)
        return h_t, c_t, dot(h_t, U)  # (B, H), (B, H), (B, G*H)
    return scan_step


def carrying_scan(step, inputs, mask, h0, c0, W, U, b, dot, name):
    """One layer of a cell of `cells.STEPS` over a sequence: inputs (T, B, n_in) -> hs, cs (T, B, H)."""
    xw = dot(inputs, W) + b  # (T, B, G*H): the input projection of all steps, one product
    hs, cs, _ = pytensor.scan(
        carrying_step(step, dot),
        sequences=[xw, mask],
        outputs_info=[h0, c0, dot(h0, U)],
        non_sequences=[U],
        strict=True,
        name=name,
        return_updates=False,
    )
    return hs, cs


def mogrifier_scan(inputs, mask, h0, c0, W, U, b, rounds, dot, name):
    """One Mogrifier LSTM layer over a sequence: inputs (T, B, n_in) -> hs, cs (T, B, H). Its input
    product is made inside the step (`cells.mogrifier_step`), and so is h U: the gated state is
    not the one the step before returned, so there is nothing to carry."""
    def step(x_t, mask_t, h_tm1, c_tm1, W, U, b, *rounds):
        return mogrifier_step(x_t, mask_t, h_tm1, c_tm1, W, U, b, rounds, dot)
    hs, cs = pytensor.scan(step, sequences=[inputs, mask], outputs_info=[h0, c0], non_sequences=[W, U, b, *rounds],
                           strict=True, name=name, return_updates=False)
    return hs, cs


def mask_shapes(cfg: ModelConfig, vocab_size: int, T=None, B=None) -> dict[str, tuple]:
    """Name -> shape of the dropout multipliers a training step takes (0 or 1/(1-p), drawn by
    `compiled.CompiledModel` per batch), for each probability of `cfg` that is not 0:

        keep{l}      (T, B, H)    dropout: every unit of layer l's output at every step
        embed        (V,)         dropout_embed: whole rows of the embedding (one per character)
        input        (B, E)       dropout_input: locked on the embedding output, the same at every step
        hidden{l}    (B, H)       dropout_hidden: locked on layer l's output, l < L-1
        output       (B, H)       dropout_output: locked on the last layer's output
        U{l}         (H, G*H)     weight_dropout: DropConnect on layer l's U, one mask per batch

    Locked masks (Gal & Ghahramani 2016) broadcast over time; every mask is applied outside the
    scan, so its step function is the plain one (AWD-LSTM, Merity et al. 2017)."""
    L, H, E, G = cfg.num_layers, cfg.hidden, cfg.embedding, GATES[cfg.cell]
    out = {}
    if cfg.dropout > 0:
        out.update({f"keep{l}": (T, B, H) for l in range(L)})
    if cfg.dropout_embed > 0:
        out["embed"] = (vocab_size,)
    if cfg.dropout_input > 0:
        out["input"] = (B, E)
    if cfg.dropout_hidden > 0:
        out.update({f"hidden{l}": (B, H) for l in range(L - 1)})
    if cfg.dropout_output > 0:
        out["output"] = (B, H)
    if cfg.weight_dropout > 0:
        out.update({f"U{l}": (H, G * H) for l in range(L)})
    return out


def mask_probability(cfg: ModelConfig, name: str) -> float:
    """The drop probability behind a mask of `mask_shapes`."""
    key = {"k": "dropout", "e": "dropout_embed", "i": "dropout_input", "h": "dropout_hidden", "o": "dropout_output",
           "U": "weight_dropout"}[name[0]]
    return getattr(cfg, key)


def recurrent_stack(params, cfg: ModelConfig, emb, mask, h0, c0, masks=None):
    """Run the L recurrent layers over a whole sequence.

    emb (T, B, E) embedded inputs; mask (T, B); h0, c0 (L, B, H) initial states; masks: None or
    the dropout multipliers of `mask_shapes` (keep{l}, hidden{l}, output, U{l}; the others are
    `forward`'s). Returns the top layer's hidden states (T, B, H) and the final states hT, cT (L, B, H).
    """
    masks = masks or {}
    dot = matmul(cfg.precision)
    inputs, h_last, c_last = emb, [], []
    for layer in range(cfg.num_layers):
        W, U, b = (params[f"layer{layer}/{k}"] for k in "WUb")
        if f"U{layer}" in masks:
            U = U * masks[f"U{layer}"]  # (H, G*H): DropConnect, one mask for the whole sequence
        if cfg.cell == "mogrifier":
            hs, cs = mogrifier_scan(inputs, mask, h0[layer], c0[layer], W, U, b,
                                    mogrifier_rounds(params, layer, cfg.mogrifier_rounds), dot, f"layer{layer}")
        else:
            hs, cs = carrying_scan(STEPS[cfg.cell], inputs, mask, h0[layer], c0[layer], W, U, b, dot, f"layer{layer}")
        # hs, cs (T, B, H) each
        h_last.append(hs[-1])
        c_last.append(cs[-1])
        inputs = hs if f"keep{layer}" not in masks else hs * masks[f"keep{layer}"]
        locked = "output" if layer == cfg.num_layers - 1 else f"hidden{layer}"
        if locked in masks:
            inputs = inputs * masks[locked][None]  # (T, B, H): the same mask at every step
    return inputs, pt.stack(h_last), pt.stack(c_last)


def output_logits(params, cfg: ModelConfig, top, precision: str = "float32"):
    """The output layer: top (..., H) -> logits (..., V), its products in `precision`.

        untied:  z = h W_out + b
        tied:    z = (h P) Eᵀ + b      (P, output/proj (H, E), only when H ≠ E)

    Tied (Press & Wolf 2017; Inan et al. 2017), the embedding matrix E is used twice, so
    `pytensor.grad` sums the gradients of its two uses into one."""
    dot = matmul(precision)
    if not cfg.tie_weights:
        return dot(top, params["output/W"]) + params["output/b"]
    if "output/proj" in params:
        top = dot(top, params["output/proj"])  # (..., E)
    return matmul_nt(precision)(top, params["embedding"]) + params["output/b"]


def forward(params, cfg: ModelConfig, x, mask, h0, c0, masks=None):
    """x (T, B) int32 token ids -> logits (T, B, V), hT (L, B, H), cT (L, B, H). masks: the
    dropout multipliers of `mask_shapes` (training only), or None."""
    masks = masks or {}
    emb = params["embedding"][x]  # (T, B, E)
    if "embed" in masks:
        emb = emb * masks["embed"][x][..., None]  # a dropped character's whole row is 0 in every place
    if "input" in masks:
        emb = emb * masks["input"][None]  # (T, B, E): the same mask at every step
    top, hT, cT = recurrent_stack(params, cfg, emb, mask, h0, c0, masks)
    logits = output_logits(params, cfg, top, cfg.precision)  # (T, B, V)
    return logits, hT, cT


def token_nll(logits, y):
    """Negative log-likelihood of each target: logits (..., V), y (...) int -> (...), in nats.
    A fused softmax cross-entropy (xent.py): logsumexp(z) - z[y], gradient softmax(z) - onehot(y)."""
    return softmax_cross_entropy(logits, y)


def loss_terms(params, cfg: ModelConfig, x, y, mask, h0, c0, masks=None):
    """Masked loss of a batch: (mean NLL per token, summed NLL, token count, hT, cT).

    Padded positions (mask 0) enter neither the sum nor the count. NLL is in nats.
    """
    logits, hT, cT = forward(params, cfg, x, mask, h0, c0, masks)
    nll = token_nll(logits, y) * mask  # (T, B)
    total = nll.sum(acc_dtype=cfg.dtype)
    count = mask.sum(acc_dtype=cfg.dtype)
    return total / pt.maximum(count, 1), total, count, hT, cT


def single_step(params, cfg: ModelConfig, tokens, h_tm1, c_tm1):
    """One character for every row: tokens (B,) int32, states (L, B, H) ->
    logits (B, V), new states (L, B, H). The same cells as the sequence graph, one step long."""
    inputs = params["embedding"][tokens]  # (B, E)
    ones = pt.ones((tokens.shape[0],), dtype=cfg.dtype)
    h_new, c_new = [], []
    for layer in range(cfg.num_layers):
        W, U, b = (params[f"layer{layer}/{k}"] for k in "WUb")
        if cfg.cell == "mogrifier":
            rounds = mogrifier_rounds(params, layer, cfg.mogrifier_rounds)
            h, c = mogrifier_step(inputs, ones, h_tm1[layer], c_tm1[layer], W, U, b, rounds)  # (B, H)
        else:
            xw, hu = pt.dot(inputs, W) + b, pt.dot(h_tm1[layer], U)  # (B, G*H) each
            h, c = STEPS[cfg.cell](xw, ones, h_tm1[layer], c_tm1[layer], hu)  # (B, H)
        h_new.append(h)
        c_new.append(c)
        inputs = h
    logits = output_logits(params, cfg, inputs)  # (B, V)
    return logits, pt.stack(h_new), pt.stack(c_new)
