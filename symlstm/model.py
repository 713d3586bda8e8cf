"""The language model as a symbolic PyTensor graph: parameters, forward pass, loss.

Owns the parameter layout (a dict of NumPy arrays with stable names, which are also the checkpoint's
dataset paths) and the graph built from it. It never opens files and never compiles: `compiled.py`
turns these graphs into functions.

Shape letters, used in every comment: B batch, T time, E embedding, H hidden, V vocabulary,
L layers, G gate blocks per cell (LSTM 4, GRU 3, RNN 1). Sequences are time-major: (T, B).
"""
import numpy as np
import pytensor
import pytensor.tensor as pt

from .cells import GATES, STEPS, gate_columns
from .config import ModelConfig
from .precision import matmul
from .xent import softmax_cross_entropy


def param_shapes(vocab_size: int, cfg: ModelConfig) -> dict[str, tuple]:
    """Name -> shape of every parameter: embedding (V, E), layer{l}/W (in, G*H),
    layer{l}/U (H, G*H), layer{l}/b (G*H,), output/W (H, V), output/b (V,)."""
    G, H = GATES[cfg.cell], cfg.hidden
    shapes = {"embedding": (vocab_size, cfg.embedding)}
    for layer in range(cfg.num_layers):
        n_in = cfg.embedding if layer == 0 else H
        shapes[f"layer{layer}/W"] = (n_in, G * H)
        shapes[f"layer{layer}/U"] = (H, G * H)
        shapes[f"layer{layer}/b"] = (G * H,)
    shapes["output/W"] = (H, vocab_size)
    shapes["output/b"] = (vocab_size,)
    return shapes


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
    if cfg.cell == "lstm":
        forget = gate_columns("lstm", "f", cfg.hidden)
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
    product per step (`symlstm graph` shows one Dot left in the gradient scan, not two). Measured
    in one process, alternating: 3 % faster training steps at shape B of `make bench`, 0.5 % at A.
    `dot` is the matrix product (`precision.matmul`).
    """
    def scan_step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1, U):
        h_t, c_t = step(xw_t, mask_t, h_tm1, c_tm1, hu_tm1)
        return h_t, c_t, dot(h_t, U)  # (B, H), (B, H), (B, G*H)
    return scan_step


def recurrent_stack(params, cfg: ModelConfig, emb, mask, h0, c0, keep=None):
    """Run the L recurrent layers over a whole sequence.

    emb (T, B, E) embedded inputs; mask (T, B); h0, c0 (L, B, H) initial states; keep: None or L
    dropout multipliers (T, B, H), applied to each layer's output. Returns the top layer's hidden
    states (T, B, H) and the final states hT, cT (L, B, H).
    """
    dot = matmul(cfg.precision)
    step = carrying_step(STEPS[cfg.cell], dot)
    inputs, h_last, c_last = emb, [], []
    for layer in range(cfg.num_layers):
        W, U, b = (params[f"layer{layer}/{k}"] for k in "WUb")
        xw = dot(inputs, W) + b  # (T, B, G*H): the input projection of all steps, one product
        hs, cs, _ = pytensor.scan(
            step,
            sequences=[xw, mask],
            outputs_info=[h0[layer], c0[layer], dot(h0[layer], U)],
            non_sequences=[U],
            strict=True,
            name=f"layer{layer}",
            return_updates=False,
        )  # (T, B, H) each
        h_last.append(hs[-1])
        c_last.append(cs[-1])
        inputs = hs if keep is None else hs * keep[layer]
    return inputs, pt.stack(h_last), pt.stack(c_last)


def forward(params, cfg: ModelConfig, x, mask, h0, c0, keep=None):
    """x (T, B) int32 token ids -> logits (T, B, V), hT (L, B, H), cT (L, B, H)."""
    emb = params["embedding"][x]  # (T, B, E)
    top, hT, cT = recurrent_stack(params, cfg, emb, mask, h0, c0, keep)
    logits = matmul(cfg.precision)(top, params["output/W"]) + params["output/b"]  # (T, B, V)
    return logits, hT, cT


def token_nll(logits, y):
    """Negative log-likelihood of each target: logits (..., V), y (...) int -> (...), in nats.
    A fused softmax cross-entropy (xent.py): logsumexp(z) - z[y], gradient softmax(z) - onehot(y)."""
    return softmax_cross_entropy(logits, y)


def loss_terms(params, cfg: ModelConfig, x, y, mask, h0, c0, keep=None):
    """Masked loss of a batch: (mean NLL per token, summed NLL, token count, hT, cT).

    Padded positions (mask 0) enter neither the sum nor the count. NLL is in nats.
    """
    logits, hT, cT = forward(params, cfg, x, mask, h0, c0, keep)
    nll = token_nll(logits, y) * mask  # (T, B)
    total = nll.sum(acc_dtype=cfg.dtype)
    count = mask.sum(acc_dtype=cfg.dtype)
    return total / pt.maximum(count, 1), total, count, hT, cT


def single_step(params, cfg: ModelConfig, tokens, h_tm1, c_tm1):
    """One character for every row: tokens (B,) int32, states (L, B, H) ->
    logits (B, V), new states (L, B, H). The same cells as the sequence graph, one step long."""
    inputs = params["embedding"][tokens]  # (B, E)
    ones = pt.ones((tokens.shape[0],), dtype=cfg.dtype)
    step = STEPS[cfg.cell]
    h_new, c_new = [], []
    for layer in range(cfg.num_layers):
        W, U, b = (params[f"layer{layer}/{k}"] for k in "WUb")
        xw, hu = pt.dot(inputs, W) + b, pt.dot(h_tm1[layer], U)  # (B, G*H) each
        h, c = step(xw, ones, h_tm1[layer], c_tm1[layer], hu)  # (B, H)
        h_new.append(h)
        c_new.append(c)
        inputs = h
    logits = pt.dot(inputs, params["output/W"]) + params["output/b"]  # (B, V)
    return logits, pt.stack(h_new), pt.stack(c_new)


def generate_scan(params, cfg: ModelConfig, first, h0, c0, noise, inv_temperature, banned, eos_id, pad_id):
    """Generate len(noise) tokens per row inside one scan (Gumbel-max sampling).

    first (B,) int32 the token to feed first; h0, c0 (L, B, H); noise (N, B, V) Gumbel noise, zeros
    for greedy decoding; inv_temperature scalar; banned (V,) 0/1, tokens never to emit. A row stops
    at <eos> and is padded with <pad> after it. Returns tokens (N, B) and the final states.
    """
    names = sorted(params)

    def sample_step(noise_t, tok_tm1, done_tm1, h_tm1, c_tm1, *values):
        p = dict(zip(names, values))
        logits, h, c = single_step(p, cfg, tok_tm1, h_tm1, c_tm1)  # (B, V)
        scores = logits * inv_temperature + noise_t - banned * 1e9  # (B, V)
        tok = first_max(scores)  # (B,)
        tok = pt.switch(done_tm1, pad_id, tok).astype("int32")
        done = pt.or_(done_tm1, pt.eq(tok, eos_id))
        return tok, done, h, c

    done0 = pt.zeros(first.shape, dtype="bool")
    tokens, _, hs, cs = pytensor.scan(
        sample_step,
        sequences=[noise],
        outputs_info=[first, done0, h0, c0],
        non_sequences=[params[n] for n in names],
        strict=True,
        name="generate",
        return_updates=False,
    )  # tokens (N, B)
    return tokens, hs[-1], cs[-1]


def first_max(scores):
    """The index of each row's largest score, the first where several tie: argmax as a maximum
    and a minimum. XLA's CPU argmax is a two-valued reduction that does not vectorise: 28 µs
    against 4.7 over a (1, 6000) row on this project's AMD EPYC (one step of batch-1 sampling
    at shape A takes ≈ 110 µs in all)."""
    V = scores.shape[-1]
    at_max = pt.eq(scores, scores.max(axis=-1, keepdims=True))  # (B, V)
    return pt.min(pt.switch(at_max, _indices(V)[None, :], V), axis=-1).astype("int32")


def draw(weights, u, block=64):
    """Inverse-CDF sampling: per row of weights (B, V) ≥ 0, the first index whose cumulative
    weight exceeds u (B,) in [0, 1) times the row's total. Two levels of prefix sums, over blocks of
    `block` columns and then inside the block drawn, because XLA's CPU cumsum over a whole row of
    6,000 took 15 µs here, a seventh of a batch-1 sampling step. Never an index of weight 0."""
    B, V = weights.shape
    G = (V + block - 1) // block
    rows, cols, blocks = _indices(B), _indices(block), _indices(G)
    w = pt.concatenate([weights, pt.zeros((B, G * block - V), dtype=weights.dtype)], axis=1)
    w = w.reshape((B, G, block))  # (B, G, block)
    sums = w.sum(axis=2)  # (B, G)
    upto = pt.cumsum(sums, axis=1)  # (B, G): weight up to the end of each block
    target = u * upto[:, -1]  # (B,)
    last_block = pt.max(pt.switch(pt.gt(sums, 0), blocks[None, :], 0), axis=1)  # rounding must not pass it
    g = pt.minimum(pt.sum(pt.le(upto, target[:, None]), axis=1), last_block)  # (B,): the block
    inside = w[rows, g]  # (B, block)
    before = (upto[rows, g] - sums[rows, g])[:, None]  # (B, 1)
    k = pt.sum(pt.le(before + pt.cumsum(inside, axis=1), target[:, None]), axis=1)  # (B,)
    last = pt.max(pt.switch(pt.gt(inside, 0), cols[None, :], 0), axis=1)  # nor here
    return (g * block + pt.minimum(k, last)).astype("int32")


def _indices(n):
    """0 … n-1 as int32. Not pt.arange: on the JAX backend it hands jnp.arange a start of dtype
    int8, and NumPy 2 refuses a stop above 127 in arithmetic with it (OverflowError)."""
    return (pt.cumsum(pt.ones((n,), dtype="int64")) - 1).astype("int32")


def generate_in_form(params, cfg: ModelConfig, first, h0, c0, uniform, inv_temperature, layout, tone_ok,
                     rhyme_at, first_rhyme, group_of, greedy=False):
    """Generate a poem of a fixed form per row inside one scan, under its layout, tones and rhyme
    (the tables of `constraints.Constraints.tables`: layout (N, V), tone_ok (N, P, V), rhyme_at
    (N, P), first_rhyme (V,), group_of (V,); N positions, P patterns, V tokens).

    first (B,) int32 the token to feed first; h0, c0 (L, B, H); uniform (N, B) in [0, 1), one draw
    per character (`draw`: the first allowed token whose cumulative probability exceeds it);
    inv_temperature scalar; greedy (a Python bool: a graph of its own): the likeliest allowed token
    instead of a draw. The state carried besides h, c: which patterns are still alive (B, P), each
    pattern's rhyme group (B, P; -1 before its first rhyme) and the rhyme characters it has used
    (B, P, V). Returns tokens (N, B), their log-probabilities (N, B) under the unmasked model at
    temperature 1, and the allowed masks (N, B, V), which the tests hold against the Python rules.
    """
    names = sorted(params)
    B, P, V = first.shape[0], tone_ok.shape[1], group_of.shape[0]

    def form_step(u_t, layout_t, tone_t, rhyme_t, tok_tm1, h_tm1, c_tm1, alive, group, used,
                  inv_temperature, first_rhyme, group_of, *values):
        p = dict(zip(names, values))
        rows, patterns, vocab = (_indices(n) for n in (tok_tm1.shape[0], alive.shape[1], group_of.shape[0]))
        logits, h, c = single_step(p, cfg, tok_tm1, h_tm1, c_tm1)  # (B, V)
        in_group = pt.switch(pt.ge(group, 0)[:, :, None], pt.eq(group_of[None, None, :], group[:, :, None]),
                             first_rhyme[None, None, :])  # (B, P, V)
        fits = tone_t[None] & (~rhyme_t[None, :, None] | (in_group & ~used))  # (B, P, V): per pattern
        allowed = layout_t[None] & pt.any(alive[:, :, None] & fits, axis=1)  # (B, V)
        scores = pt.switch(allowed, logits * inv_temperature, -np.inf)  # (B, V)
        if greedy:
            tok = first_max(scores)
        else:
            tok = draw(pt.exp(scores - scores.max(axis=1, keepdims=True)), u_t)
        logp = logits[rows, tok] - pt.logsumexp(logits, axis=1)  # (B,)
        alive = alive & fits[rows[:, None], patterns[None, :], tok[:, None]]  # (B, P)
        wrote_rhyme = rhyme_t[None, :] & alive  # (B, P)
        group = pt.switch(wrote_rhyme, group_of[tok][:, None], group).astype("int32")
        used = used | (wrote_rhyme[:, :, None] & pt.eq(vocab[None, None, :], tok[:, None, None]))
        return tok, h, c, alive, group, used, logp, allowed

    alive0 = pt.ones((B, P), dtype="bool")
    group0 = pt.full((B, P), -1, dtype="int32")
    used0 = pt.zeros((B, P, V), dtype="bool")
    outs = pytensor.scan(
        form_step,
        sequences=[uniform, layout, tone_ok, rhyme_at],
        outputs_info=[first, h0, c0, alive0, group0, used0, None, None],
        non_sequences=[inv_temperature, first_rhyme, group_of] + [params[n] for n in names],
        strict=True,
        name="generate_in_form",
        return_updates=False,
    )
    tokens, logp, allowed = outs[0], outs[6], outs[7]
    return tokens, logp, allowed
