"""Scoring a poem someone wrote: how surprising each character is to a model
(`run.evaluate.surprisal`), and every rule of regulated verse it breaks (`verse.check_verse`). The
model is optional; the rules need none.
"""
from symlstm.poetics.judge import judge
from symlstm.poetics.lexicon import Lexicon
from symlstm.poetics.verse import verdict_row
from symlstm.run.evaluate import surprisal
from symlstm.vocab import Vocab


def score(texts: list[str], compiled=None, vocab: Vocab | None = None, lex: Lexicon | None = None,
          form: str = "") -> list[dict]:
    """One dict per poem: the verdict's fields (`verse.verdict_row`: form, pattern, tones, faults,
    notes, …) and, with a model, `surprisal` ([character, bits] per character, then <eos>),
    `bits_per_token` and `perplexity` (exp of the mean NLL in nats over characters + <eos>, as
    `symlstm eval` has it) and `unknown` (characters outside the vocabulary, scored as <unk>). A ci is
    judged against its tune: `form` ci:TUNE, or the one tune whose layout the text has."""
    lex = lex or Lexicon.load()
    rows = [verdict_row(t, judge(t, lex, form)) for t in texts]
    if compiled is not None and texts:
        for row, text, bits in zip(rows, texts, surprisal(compiled, vocab, texts)):
            row["surprisal"] = [[ch, round(float(b), 3)] for ch, b in zip(list(text) + ["<eos>"], bits)]
            row["bits_per_token"] = float(bits.mean())
            row["perplexity"] = float(2 ** bits.mean())
            row["unknown"] = vocab.unknown(text)
    return rows
