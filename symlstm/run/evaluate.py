"""Exact evaluation: summed NLL over every predicted token divided by their count.

Each poem is scored as `<bos> c1 … cn <eos>`; the predicted tokens are c1 … cn and <eos>. The
result does not depend on the batch size (padding enters neither sum nor count). `nll_sum` is the
one loop over batches: `evaluate` and the training loop's validation both use it.
"""
import collections
import math

import numpy as np

from symlstm.core.sampling import sample_texts
from symlstm.corpus.batching import poem_batches, stream_batches
from symlstm.corpus.loading import CorpusError, load_corpus
from symlstm.errors import InputError
from symlstm.poetics.forms import FORM_GROUPS, form_group, form_of
from symlstm.poetics.judge import form_token_of
from symlstm.poetics.lexicon import Lexicon
from symlstm.vocab import EOS, Vocab, unk_rate


def surprisal(compiled, vocab: Vocab, texts: list[str]) -> list[np.ndarray]:
    """Bits of each predicted token of `<bos> text <eos>`, per text: an array (len(text) + 1,), the
    last entry for <eos>. One single-step call per position for all texts at once (float64 sums)."""
    ids = [list(vocab.encode(t, bos=False)) for t in texts]
    steps = max(len(x) for x in ids)
    h, c = compiled.zero_state(len(texts))
    tok = np.array([vocab.start(form_token_of(t, Lexicon.load())) for t in texts], np.int32)  # or <bos>
    out = [np.zeros(len(x)) for x in ids]
    for k in range(steps):
        logp, h, c = compiled.step(tok, h, c)
        for b, x in enumerate(ids):
            if k < len(x):
                # ≥ 0 by definition; a float32 log-softmax can round a near-certain token's to +1e-7
                out[b][k] = max(0.0, -float(logp[b, x[k]]) / math.log(2))
        tok = np.array([x[k] if k < len(x) else EOS for x in ids], np.int32)
    return out


def nll_sum(compiled, batches, carry: bool = False) -> tuple[float, float]:
    """(summed NLL in nats, predicted-token count) over (x, y, mask) batches. carry=True passes the
    final states of one batch on to the next (stream windows); else every batch starts from zero."""
    total = count = 0.0
    state = None
    for x, y, mask in batches:
        if state is None or not carry:
            state = compiled.zero_state(x.shape[1])
        t, n, *state = compiled.evaluate(x, y, mask, *state)
        total, count = total + t, count + n
    return total, count


def stream_eval_batches(seqs, batch_size: int, seq_length: int, dtype="float32"):
    """Stream windows for scoring a split that may be shorter than batch_size × seq_length: fewer
    rows, then shorter windows, so that every split of two tokens or more is scored."""
    tokens = sum(len(s) for s in seqs)
    rows = max(1, min(batch_size, (tokens - 1) // seq_length))
    return stream_batches(seqs, rows, min(seq_length, (tokens - 1) // rows), dtype)


def _check_batch_size(batch_size: int):
    if not 1 <= batch_size <= 4096:
        raise InputError(f"--batch-size must be between 1 and 4096, got {batch_size}")


def evaluate(compiled, seqs: list[np.ndarray], batch_size: int = 32) -> dict:
    """Metrics of encoded sequences: poems, tokens, unk_rate, nll_per_token (nats), perplexity,
    bits_per_char (bits per predicted token)."""
    _check_batch_size(batch_size)
    if not seqs:
        raise InputError("nothing to evaluate: no poems")
    total, count = nll_sum(compiled, poem_batches(seqs, batch_size, dtype=compiled.cfg.dtype))
    nll = total / count
    return {"poems": len(seqs), "tokens": int(round(count)), "unk_rate": unk_rate(seqs),
            "nll_per_token": nll, "perplexity": math.exp(nll), "bits_per_char": nll / math.log(2)}


def evaluate_texts(compiled, vocab: Vocab, texts: list[str], batch_size: int = 32, forms: list[str] | None = None) -> dict:
    """evaluate() on raw poems (one string each), encoded with the model's vocabulary; each starts
    with its form token from `forms` (token names, e.g. a corpus' `<ci:浣溪沙>`), else the one
    its text is judged to be (`judge.form_token_of`)."""
    forms = forms or [form_token_of(t, Lexicon.load()) for t in texts]
    return evaluate(compiled, [vocab.encode(t, start=vocab.start(f)) for t, f in zip(texts, forms)], batch_size)


def evaluate_split(compiled, vocab: Vocab, data_cfg, split: str, root, batch_size: int = 32, warn=print) -> dict:
    """evaluate() on a split of the corpus a checkpoint was trained on (its data config), which
    must still have the checkpoint's vocabulary."""
    _check_batch_size(batch_size)  # before the corpus loads
    corpus = load_corpus(data_cfg, root, warn=warn)
    if corpus.vocab != vocab:
        raise CorpusError(f"{data_cfg.path}: the corpus vocabulary differs from the checkpoint's; "
                          "use --text FILE to score other poems")
    result = evaluate(compiled, corpus.splits[split], batch_size)
    if any(len(part) > 1 for part in quatrains_by_layout(corpus.texts[split]).values()):
        gain = context_gain(compiled, vocab, corpus.texts[split])  # lines 3–4 after their own 1–2 or another's
        result.update({f"context_{k}": v for k, v in gain.items()})
    if vocab.has_form_tokens:  # one row per form: the first token of each sequence names it
        firsts = corpus.splits[split].firsts()
        for token in sorted(set(firsts.tolist())):
            part = evaluate(compiled, corpus.splits[split].subset(firsts == token), batch_size)
            result[f"perplexity {vocab.itos[token]}"] = part["perplexity"]
            result[f"poems {vocab.itos[token]}"] = part["poems"]
    return result


def quatrains_by_layout(texts: list[str]) -> dict:
    """The texts that are quatrains (`forms.form_of`: wujue, qijue), by form, in their order."""
    groups = collections.defaultdict(list)
    for t in texts:
        form = form_of(t)
        if form in FORM_GROUPS["jueju"]:
            groups[form].append(t)
    return dict(groups)


def context_gain(compiled, vocab: Vocab, texts: list[str]) -> dict:
    """How much the model uses a quatrain's first couplet when it reads the second: the bits per
    predicted token of lines 3 and 4 (their characters, marks and <eos>) after the poem's own lines
    1–2, against the same lines after lines 1–2 of another poem of the same layout, and the gain
    (the second less the first). "Another poem" is a fixed derangement: within each layout, in the
    order given, poem i is read after poem i+1's first couplet (the last after the first's).
    Perplexity hides this: a model that ignored the first couplet would lose little of it.

        own   = Σ bits(lines 3–4 | own 1–2)   / n      other = Σ bits(lines 3–4 | other 1–2) / n
        gain  = other − own  (bits per token)          share = gain / other

    Each reading starts with the poem's form token, the same for both (same layout)."""
    own, other = [], []
    for part in quatrains_by_layout(texts).values():
        if len(part) < 2:
            continue
        for i, t in enumerate(part):
            half = len(t) // 2  # lines 1–2 with their marks
            own.append(t)
            other.append(part[(i + 1) % len(part)][:half] + t[half:])
    if not own:
        raise InputError("context gain: no two quatrains of one layout (五絕 or 七絕) among the poems")
    second = [slice(len(t) // 2, None) for t in own]  # the tokens of lines 3–4 and <eos>
    mine = np.concatenate([bits[k] for bits, k in zip(surprisal(compiled, vocab, own), second)]).mean()
    theirs = np.concatenate([bits[k] for bits, k in zip(surprisal(compiled, vocab, other), second)]).mean()
    return {"poems": len(own), "tokens": sum(len(t) - len(t) // 2 + 1 for t in own), "bits_own": float(mine),
            "bits_other": float(theirs), "gain_bits": float(theirs - mine), "gain_share": float((theirs - mine) / theirs)}


def sample_context_gain(compiled, vocab: Vocab, num: int = 1000, temperature: float = 1.0, seed: int = 0,
                        chunk: int = 100) -> dict:
    """`context_gain` of free samples under the model that wrote them: `num` plain samples
    (`sampling.sample_texts`, at most 64 characters, drawn `chunk` at a time with seeds seed,
    seed + 1, …), of which the quatrains are read as the test poems are. At temperature 1 the
    samples follow the model's own distribution: the gain then says how much what it writes in
    lines 3–4 hangs on the lines 1–2 it wrote. Adds `samples` and `quatrains` to the result."""
    if not 1 <= num <= 100_000:
        raise InputError(f"--samples must be between 1 and 100000, got {num}")
    if not temperature > 0:
        raise InputError(f"--temperature must be above 0, got {temperature}")
    texts = []
    for k, start in enumerate(range(0, num, chunk)):
        texts += sample_texts(compiled, vocab, min(chunk, num - start), temperature, seed=seed + k)
    quatrains = sum(len(part) for part in quatrains_by_layout(texts).values())
    return {"samples": num, "quatrains": quatrains, **context_gain(compiled, vocab, texts)}


def evaluate_couplets(compiled, vocab: Vocab, lines: list[str]) -> dict:
    """Perplexity of each 下聯 given its 上聯, over lines `上聯，下聯。` (the halves split at the middle
    comma): the 下聯's characters, its punctuation and <eos> are the predicted tokens."""
    pairs = []
    for line in lines:
        half = len(line) // 2
        if len(line) % 2 or line[half - 1] != "，" or line[-1] != "。":
            raise InputError(f"not a couplet of two equal halves, 上聯，下聯。: {line!r}")
        pairs.append(half)
    bits = surprisal(compiled, vocab, lines)
    picked = np.concatenate([b[half:] for b, half in zip(bits, pairs)])
    nats = float(picked.mean() * math.log(2))
    return {"couplets": len(lines), "tokens": int(picked.size), "nll_per_token": nats,
            "perplexity": math.exp(nats), "bits_per_char": float(picked.mean())}


def compare(models: dict, texts: list[str], batch_size: int = 32, couplets: bool = False,
            forms: list[str] | None = None, tick=lambda n=1, stage=None: None, row_done=None) -> dict:
    """Perplexity of each model per form, on the poems whose characters every model's vocabulary
    knows (so that no model is scored on <unk>s another never sees). `models`: name -> (compiled,
    vocab). Returns {"poems", "known", "rows": [{"form", "poems", name: perplexity, ...}]}, one row
    per form (`forms.form_group` of each poem's form token) and a last row, "all". couplets=True:
    the texts are `上聯，下聯。` lines and one row holds each model's 下聯 perplexity given the 上聯.
    `forms`: each text's form token (a corpus knows a ci's tune; a text alone shows only its layout).
    `tick(n, stage)` after each model's pass over n poems; `row_done(row)` with each finished row
    (first None: the rows are about to come)."""
    _check_batch_size(batch_size)
    vocabs = [vocab for _, vocab in models.values()]
    token_of = dict(zip(texts, forms or [form_token_of(t, Lexicon.load()) for t in texts]))
    known = [t for t in texts if not any(v.unknown(t) for v in vocabs)]
    if not known:
        raise InputError(f"none of the {len(texts)} poems has only characters every model knows")
    done = row_done or (lambda row: None)
    done(None)
    if couplets:
        row = {"form": "下聯 given 上聯", "poems": len(known)}
        for name, (compiled, vocab) in models.items():
            row[name] = evaluate_couplets(compiled, vocab, known)["perplexity"]
            tick(len(known), f"compare: {name}")
        done(row)
        return {"poems": len(texts), "known": len(known), "rows": [row]}
    groups = collections.defaultdict(list)
    for t in known:
        groups[form_group(token_of[t])].append(t)
    rows = []
    for form, part in sorted(groups.items()) + [("all", known)]:
        row = {"form": form, "poems": len(part)}
        for name, (compiled, vocab) in models.items():
            row[name] = evaluate_texts(compiled, vocab, part, batch_size, [token_of[t] for t in part])["perplexity"]
            tick(len(part), f"compare: {form}, {name}")
        rows.append(row)
        done(row)
    return {"poems": len(texts), "known": len(known), "rows": rows}
