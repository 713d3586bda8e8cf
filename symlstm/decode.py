"""Generating poems from a compiled model: the compiled scan path and the single-step path.

The plain path (temperature or greedy, no constraints) generates whole sequences for all rows in
one compiled call (`CompiledModel.generate`). The step path calls the single-step function once per
character and shapes the distribution in NumPy: top-k, top-p, forms (line lengths and ，。),
acrostics, tones and rhyme (`verse.ToneConstraint`), and beam search. Special tokens are never emitted. Errors are `DecodeError`s.
"""
from dataclasses import dataclass

import numpy as np

from .errors import UserError
from .forms import FORMS, LINE_ENDS, PUNCT, poem_length
from .verse import QUATRAIN, Lexicon, ToneConstraint
from .vocab import BOS, EOS, Vocab


class DecodeError(UserError, ValueError):
    """Decoding options that cannot be met, naming the option."""


@dataclass(frozen=True)
class SampleOptions:
    num: int = 5
    max_length: int = 64  # characters
    seed: int = 0
    prime: str = ""
    argmax: bool = False
    temperature: float = 1.0
    top_k: int = 0  # sample among the k likeliest characters; 0: off
    top_p: float = 1.0  # sample among the likeliest characters holding this much probability; 1: off
    beam: int = 0  # beam search of this width; 0: off (sampling)
    acrostic: str = ""
    form: str = ""  # "" | wujue | qijue | wulv | qilv
    tones: str = "off"  # off | strict | loose (with a form)
    pattern: str = ""  # zeqi | zeqi-rhyme | pingqi | pingqi-rhyme ("": any, chosen by the first line)
    rhyme: str = ""  # a character naming the rhyme group (with a form)

    def validate(self, vocab: Vocab):
        if self.num < 1:
            raise DecodeError(f"--num must be at least 1, got {self.num}")
        if self.max_length < 1:
            raise DecodeError(f"--max-length must be at least 1, got {self.max_length}")
        if not self.temperature > 0:
            raise DecodeError(f"--temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise DecodeError(f"--top-k must be 0 (off) or at least 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise DecodeError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.beam < 0:
            raise DecodeError(f"--beam must be 0 (off) or at least 1, got {self.beam}")
        if self.form and self.form not in FORMS:
            raise DecodeError(f"--form {self.form!r}: choose one of {', '.join(FORMS)}")
        if self.beam and (self.argmax or self.top_k or self.top_p < 1 or self.temperature != 1.0):
            raise DecodeError("--beam searches for the likeliest poems: it does not combine with "
                              "--argmax, --temperature, --top-k or --top-p")
        if self.argmax and (self.top_k or self.top_p < 1):
            raise DecodeError("--argmax picks the likeliest character: it does not combine with --top-k or --top-p")
        if self.tones not in ("off", "strict", "loose"):
            raise DecodeError(f"--tones {self.tones!r}: choose strict, loose or off")
        if (self.tones != "off" or self.rhyme or self.pattern) and not self.form:
            raise DecodeError("--tones, --pattern and --rhyme need --form (the tone patterns are per form)")
        if self.pattern and self.pattern not in QUATRAIN:
            raise DecodeError(f"--pattern {self.pattern!r}: choose one of {', '.join(QUATRAIN)}")
        if self.pattern and self.tones == "off":
            raise DecodeError("--pattern needs --tones strict or loose")
        if len(self.rhyme) > 1:
            raise DecodeError(f"--rhyme takes one character naming the rhyme group, got {self.rhyme!r}")
        missing = vocab.unknown(self.prime + self.acrostic + self.rhyme)
        if missing:
            raise DecodeError(f"characters outside the vocabulary: {' '.join(missing)}")
        if self.form:
            n, lines = FORMS[self.form]
            if len(self.acrostic) > lines:
                raise DecodeError(f"--acrostic has {len(self.acrostic)} characters but a {self.form} has {lines} lines")
            allowed = FormConstraint(vocab, self.form, self.acrostic, self.tone_rule(vocab))
            for k in range(len(self.prime)):
                if not allowed.mask(self.prime[:k])[vocab.stoi[self.prime[k]]]:
                    raise DecodeError(f"--prime {self.prime!r} does not fit --form {self.form} at character {k + 1}")

    @property
    def constrained(self) -> bool:
        return bool(self.form or self.acrostic or self.top_k or self.top_p < 1 or self.beam)

    def tone_rule(self, vocab: Vocab):
        """The ToneConstraint these options ask for, or None."""
        if self.tones == "off" and not self.rhyme:
            return None
        lex = Lexicon.load()
        if self.rhyme and not lex.groups.get(self.rhyme):
            raise DecodeError(f"--rhyme {self.rhyme}: not a 平-tone character of the 平水韻 table")
        rule = ToneConstraint(vocab, lex, self.form, self.tones if self.tones != "off" else "rhyme",
                              self.pattern, self.rhyme, self.acrostic)
        if not rule.names:
            raise DecodeError(f"--acrostic {self.acrostic}: the tones of its characters fit no "
                              f"{'--pattern ' + self.pattern if self.pattern else 'standard pattern'} of a {self.form} "
                              f"under --tones {self.tones}")
        return rule


class FormConstraint:
    """Which tokens may come next, given the characters generated so far (prime included)."""

    def __init__(self, vocab: Vocab, form: str = "", acrostic: str = "", tones=None):
        self.vocab, self.form, self.acrostic, self.tones = vocab, form, acrostic, tones
        self.base = np.ones(len(vocab), bool)
        self.base[vocab.never_emitted] = False
        self.punct_ids = {ch: vocab.stoi[ch] for ch in PUNCT if ch in vocab.stoi}
        self.chars = self.base.copy()
        self.chars[EOS] = False
        self.chars[list(self.punct_ids.values())] = False
        self.chars[[i for i, s in enumerate(vocab.itos) if not s.strip()]] = False
        if form and not set(LINE_ENDS) <= set(self.punct_ids):
            raise DecodeError("the vocabulary lacks ，or 。: forms cannot be enforced with this model")

    def _only(self, token: int) -> np.ndarray:
        m = np.zeros_like(self.base)
        m[token] = True
        return m

    def mask(self, text: str) -> np.ndarray:
        if self.form:
            n, lines = FORMS[self.form]
            pos = len(text)
            if pos >= poem_length(self.form):
                return self._only(EOS)
            line, col = divmod(pos, n + 1)
            if col == n:
                return self._only(self.punct_ids[LINE_ENDS[line % 2]])
            allowed = self.chars
            if col == 0 and line < len(self.acrostic):
                allowed = self._only(self.vocab.stoi[self.acrostic[line]])
            if self.tones is not None:
                allowed = allowed & self.tones.mask(text, self.vocab)
            return allowed
        if self.acrostic:
            line = sum(ch in PUNCT for ch in text)
            at_start = not text or text[-1] in PUNCT
            if at_start and line < len(self.acrostic):
                return self._only(self.vocab.stoi[self.acrostic[line]])
            if line < len(self.acrostic):
                m = self.base.copy()
                m[EOS] = False
                return m
        return self.base


def unsatisfiable(text: str, opts: SampleOptions) -> str:
    n = FORMS[opts.form][0] if opts.form else 0
    where = f" (line {len(text) // (n + 1) + 1}, character {len(text) % (n + 1) + 1})" if n else ""
    rules = [r for r, on in (("--form " + opts.form, opts.form), ("--acrostic " + opts.acrostic, opts.acrostic),
                             ("--tones " + opts.tones, opts.tones != "off"), ("--pattern " + opts.pattern, opts.pattern),
                             ("--rhyme " + opts.rhyme, opts.rhyme)) if on]
    return (f"no character can follow {text!r}{where}: {' + '.join(rules)} exclude every character there; "
            "loosen one of them (e.g. an acrostic character whose tone the pattern forbids)")


def _shape(logp: np.ndarray, allowed: np.ndarray, opts: SampleOptions) -> np.ndarray:
    """Log-probabilities (V,) -> the sampling distribution after mask, temperature, top-k, top-p."""
    scores = np.where(allowed, logp / opts.temperature, -np.inf)
    if opts.top_k:
        kth = np.sort(scores)[-min(opts.top_k, len(scores))]
        scores = np.where(scores >= kth, scores, -np.inf)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if opts.top_p < 1:
        order = np.argsort(-probs)
        cum = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cum, opts.top_p) + 1)]
        trimmed = np.zeros_like(probs)
        trimmed[keep] = probs[keep]
        probs = trimmed / trimmed.sum()
    return probs


class Sampler:
    """Poems from a `CompiledModel` and its `Vocab`. `sample(opts)` returns a list of dicts with
    `text` and `score` (mean log-probability per generated token, nats)."""

    def __init__(self, compiled, vocab: Vocab):
        self.m, self.vocab = compiled, vocab
        self.banned = np.zeros(len(vocab), compiled.cfg.dtype)
        self.banned[vocab.never_emitted] = 1

    def _primed(self, prime: str, rows: int):
        """Feed <bos> + prime to every row; returns (last token, h, c, log-probs after prime)."""
        h, c = self.m.zero_state(rows)
        tokens = [BOS] + [self.vocab.stoi[ch] for ch in prime]
        for tok in tokens[:-1]:
            _, h, c = self.m.step(np.full(rows, tok, np.int32), h, c)
        return np.full(rows, tokens[-1], np.int32), h, c

    def sample(self, opts: SampleOptions) -> list[dict]:
        opts.validate(self.vocab)
        if opts.beam:
            return self.beam(opts)
        if opts.constrained:
            return self._stepwise(opts)
        return self._compiled(opts)

    def _compiled(self, opts: SampleOptions) -> list[dict]:
        first, h, c = self._primed(opts.prime, opts.num)
        n = max(1, opts.max_length - len(opts.prime)) + 1
        rng = np.random.default_rng(opts.seed)
        shape = (n, opts.num, len(self.vocab))
        noise = np.zeros(shape, self.m.cfg.dtype) if opts.argmax else \
            -np.log(-np.log(rng.random(shape).clip(1e-12, 1 - 1e-7))).astype(self.m.cfg.dtype)
        tokens, _, _ = self.m.generate(first, h, c, noise, opts.temperature, self.banned)
        return [{"text": (opts.prime + self.vocab.decode(tokens[:, b]))[:opts.max_length]} for b in range(opts.num)]

    def _stepwise(self, opts: SampleOptions) -> list[dict]:
        rng = np.random.default_rng(opts.seed)
        rule = FormConstraint(self.vocab, opts.form, opts.acrostic, opts.tone_rule(self.vocab))
        tok, h, c = self._primed(opts.prime, opts.num)
        texts = [opts.prime] * opts.num
        done = np.zeros(opts.num, bool)
        scores = np.zeros(opts.num)
        limit = opts.max_length if not opts.form else poem_length(opts.form)
        for _ in range(limit + 1 - len(opts.prime)):
            logp, h, c = self.m.step(tok, h, c)
            for b in np.flatnonzero(~done):
                allowed = rule.mask(texts[b])
                if len(texts[b]) >= limit:
                    allowed = rule._only(EOS)
                if not allowed.any():
                    raise DecodeError(unsatisfiable(texts[b], opts))
                probs = _shape(logp[b], allowed, opts)
                t = int(np.argmax(probs)) if opts.argmax else int(rng.choice(len(probs), p=probs))
                tok[b] = t
                scores[b] += logp[b, t]
                if t == EOS:
                    done[b] = True
                else:
                    texts[b] += self.vocab.itos[t]
            if done.all():
                break
        lengths = [len(t) - len(opts.prime) + 1 for t in texts]
        return [{"text": t, "score": float(s / n)} for t, s, n in zip(texts, scores, lengths)]

    def beam(self, opts: SampleOptions) -> list[dict]:
        """Beam search of width opts.beam over mean log-probability per token (length-normalised);
        the greedy poem is always a candidate. Returns the best opts.num (at most opts.beam)."""
        greedy = self._stepwise(SampleOptions(num=1, max_length=opts.max_length, prime=opts.prime, argmax=True,
                                              acrostic=opts.acrostic, form=opts.form, tones=opts.tones,
                                              pattern=opts.pattern, rhyme=opts.rhyme))[0]
        rule = FormConstraint(self.vocab, opts.form, opts.acrostic, opts.tone_rule(self.vocab))
        K = opts.beam
        limit = opts.max_length if not opts.form else poem_length(opts.form)
        tok, h, c = self._primed(opts.prime, 1)
        beams = [(0.0, opts.prime)]  # (summed log-prob, text)
        finished = [(greedy["score"], greedy["text"])]
        for _ in range(limit + 1 - len(opts.prime)):
            logp, h, c = self.m.step(tok, h, c)
            cand = []
            for b, (score, text) in enumerate(beams):
                allowed = rule.mask(text) if len(text) < limit else rule._only(EOS)
                lp = np.where(allowed, logp[b], -np.inf)
                for t in np.argsort(-lp)[:K]:
                    if np.isfinite(lp[t]):
                        cand.append((score + lp[t], text, int(t), b))
            cand.sort(key=lambda z: -z[0])
            keep = []
            for score, text, t, b in cand:
                if t == EOS:
                    finished.append((score / (len(text) - len(opts.prime) + 1), text))
                elif len(keep) < K:
                    keep.append((score, text + self.vocab.itos[t], t, b))
            if not keep:
                break
            rows = np.array([z[3] for z in keep])
            beams = [(z[0], z[1]) for z in keep]
            tok, h, c = np.array([z[2] for z in keep], np.int32), h[:, rows], c[:, rows]
        best = {}
        for score, text in sorted(finished, key=lambda z: -z[0]):
            best.setdefault(text, score)
        return [{"text": t, "score": float(s)} for t, s in list(best.items())[:min(opts.num, K)]]


def sample_poems(compiled, vocab: Vocab, num: int = 3, temperature: float = 0.8, seed: int = 0,
                 max_length: int = 64) -> list[str]:
    """A few plain samples (the compiled path), e.g. for progress reports during training."""
    opts = SampleOptions(num=num, temperature=temperature, seed=seed, max_length=max_length)
    return [s["text"] for s in Sampler(compiled, vocab).sample(opts)]
