"""The sampling graphs: many characters per compiled call, each a scan over `model.single_step`.

`generate_scan` draws freely (Gumbel-max); `generate_in_form` draws a regulated poem under tone and
rhyme tables, carrying the automaton of its patterns beside h and c. Shape letters as in
`model.py`, plus N steps and P patterns. `sample_texts` is the plain sampler the training loop
prints from; the constrained sampler with its options is `workbench/decode.py`'s.
"""
import numpy as np
import pytensor
import pytensor.tensor as pt

from symlstm.config import ModelConfig
from symlstm.core.model import single_step
from symlstm.vocab import Vocab


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
    and a minimum. XLA's CPU argmax is a two-valued reduction that does not vectorise: several
    times slower over a (1, 6000) row (docs/measurements.md, "argmax")."""
    V = scores.shape[-1]
    at_max = pt.eq(scores, scores.max(axis=-1, keepdims=True))  # (B, V)
    return pt.min(pt.switch(at_max, _indices(V)[None, :], V), axis=-1).astype("int32")


def draw(weights, u, block=64):
    """Inverse-CDF sampling: per row of weights (B, V) ≥ 0, the first index whose cumulative
    weight exceeds u (B,) in [0, 1) times the row's total. Two levels of prefix sums, over blocks of
    `block` columns and then inside the block drawn, because XLA's CPU cumsum over a whole row of
    6,000 took a seventh of a batch-1 sampling step (docs/measurements.md, "draw"). Never an index
    of weight 0."""
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


def gumbel_noise(rng: np.random.Generator, shape: tuple, dtype: str) -> np.ndarray:
    """Gumbel(0, 1) noise for `generate_scan`: argmax(logits / t + noise) is a draw from softmax(logits / t)."""
    return -np.log(-np.log(rng.random(shape).clip(1e-12, 1 - 1e-7))).astype(dtype)


def sample_texts(compiled, vocab: Vocab, num: int = 3, temperature: float = 0.8, seed: int = 0,
                 max_length: int = 64, first: str = "<gushi>") -> list[str]:
    """`num` plain samples of at most `max_length` characters, each started by the token `first`
    (`<bos>` for a model without form tokens), in one compiled call (`CompiledModel.generate`)."""
    h, c = compiled.zero_state(num)
    start = np.full(num, vocab.start(first), np.int32)
    noise = gumbel_noise(np.random.default_rng(seed), (max_length + 1, num, len(vocab)), compiled.cfg.dtype)
    tokens, _, _ = compiled.generate(start, h, c, noise, temperature, vocab.never_emitted_mask(compiled.cfg.dtype))
    return [vocab.decode(tokens[:, b])[:max_length] for b in range(num)]
