"""Scoring a poem someone wrote: how surprising each character is to a model, and every rule of
regulated verse it breaks (`verse.check_verse`). The model is optional; the rules need none.
"""
import math

import numpy as np

from .lexicon import Lexicon
from .verse import check_any, verdict_row
from .forms import form_token
from .vocab import EOS, Vocab


def surprisal(compiled, vocab: Vocab, texts: list[str]) -> list[np.ndarray]:
    """Bits of each predicted token of `<bos> text <eos>`, per text: an array (len(text) + 1,), the
    last entry for <eos>. One single-step call per position for all texts at once (float64 sums)."""
    ids = [list(vocab.encode(t, bos=False)) for t in texts]
    steps = max(len(x) for x in ids)
    h, c = compiled.zero_state(len(texts))
    tok = np.array([vocab.start(form_token(t)) for t in texts], np.int32)  # <bos>, or the form's token
    out = [np.zeros(len(x)) for x in ids]
    for k in range(steps):
        logp, h, c = compiled.step(tok, h, c)
        for b, x in enumerate(ids):
            if k < len(x):
                out[b][k] = -float(logp[b, x[k]]) / math.log(2)
        tok = np.array([x[k] if k < len(x) else EOS for x in ids], np.int32)
    return out


def score(texts: list[str], compiled=None, vocab: Vocab | None = None, lex: Lexicon | None = None,
          form: str = "") -> list[dict]:
    """One dict per poem: the verdict's fields (`verse.verdict_row`: form, pattern, tones, faults,
    notes, …) and, with a model, `surprisal` ([character, bits] per character, then <eos>),
    `bits_per_token` and `perplexity` (exp of the mean NLL in nats over characters + <eos>, as
    `symlstm eval` has it) and `unknown` (characters outside the vocabulary, scored as <unk>). A ci is
    judged against its tune: `form` ci:TUNE, or the one tune whose layout the text has."""
    lex = lex or Lexicon.load()
    rows = [verdict_row(t, check_any(t, lex, form)) for t in texts]
    if compiled is not None and texts:
        for row, text, bits in zip(rows, texts, surprisal(compiled, vocab, texts)):
            row["surprisal"] = [[ch, round(float(b), 3)] for ch, b in zip(list(text) + ["<eos>"], bits)]
            row["bits_per_token"] = float(bits.mean())
            row["perplexity"] = float(2 ** bits.mean())
            row["unknown"] = vocab.unknown(text)
    return rows
