"""Exact evaluation: summed NLL over every predicted token divided by their count.

Each poem is scored as `<bos> c1 … cn <eos>`; the predicted tokens are c1 … cn and <eos>. The
result does not depend on the batch size (padding enters neither sum nor count).
"""
import math

import numpy as np

from .batching import poem_batches
from .corpus import Vocab, unk_rate


def evaluate(compiled, seqs: list[np.ndarray], batch_size: int = 32) -> dict:
    """Metrics of encoded sequences: poems, tokens, unk_rate, nll_per_token (nats), perplexity,
    bits_per_char (bits per predicted token)."""
    if not seqs:
        raise ValueError("nothing to evaluate: no poems")
    total = count = 0.0
    for x, y, mask in poem_batches(seqs, batch_size, dtype=compiled.cfg.dtype):
        h0, c0 = compiled.zero_state(x.shape[1])
        t, n, _, _ = compiled.evaluate(x, y, mask, h0, c0)
        total += t
        count += n
    nll = total / count
    return {"poems": len(seqs), "tokens": int(round(count)), "unk_rate": unk_rate(seqs),
            "nll_per_token": nll, "perplexity": math.exp(nll), "bits_per_char": nll / math.log(2)}


def evaluate_texts(compiled, vocab: Vocab, texts: list[str], batch_size: int = 32) -> dict:
    """evaluate() on raw poems (one string each), encoded with the model's vocabulary."""
    return evaluate(compiled, [vocab.encode(t) for t in texts], batch_size)
