"""Generating poems from a compiled model: the compiled scan path and the single-step path.

The plain path (temperature or greedy, no constraints) generates whole sequences for all rows in
one compiled call (`CompiledModel.generate`). The step path calls the single-step function once per
character and samples from the distribution masked by the poem's `constraints.Constraints` (forms,
acrostics, tones and rhyme, keywords, templates) and shaped by top-k and top-p; beam search runs on
the same masks. Special tokens are never emitted. Errors are `DecodeError`s.
"""
from dataclasses import dataclass

import numpy as np

from symlstm.core.sampling import gumbel_noise
from symlstm.poetics.forms import (
    CI,
    FORMS,
    canonical,
    form_token,
    is_form,
    layout,
    line_length,
    line_starts,
    poem_length,
    unknown_form,
)
from symlstm.poetics.lexicon import Lexicon
from symlstm.poetics.script import PUNCT
from symlstm.poetics.verse import QUATRAIN
from symlstm.vocab import EOS, PAD, Vocab
from symlstm.workbench.constraints import (
    Constraints,
    Couplet,
    DecodeError,
    NoRepeat,
    Shape,
    Tones,
    TuneTones,
    parse_template,
    plan_keywords,
)

__all__ = ["DecodeError", "SampleOptions", "Sampler", "parse_keywords", "keywords_found", "TONE_MODES"]

# --no-repeat auto guards sampling below this temperature, where unguarded poems repeat bigrams more
# often than the corpus does (docs/sampling.md has the measured rates)
GUARD_BELOW = 0.8
TONE_MODES = ("", "loose", "strict", "rhyme", "off")  # "": the form's own rules (loose); see `tone_choice`


def parse_keywords(text: str) -> tuple:
    """Keywords as people type them, separated by , or ，: '月, 秋風' -> ('月', '秋風')."""
    return tuple(w.strip() for w in text.replace("，", ",").split(",") if w.strip())


def keywords_found(text: str, keywords: tuple) -> dict:
    """Which of the keywords a poem holds: keyword -> bool."""
    return {w: w in text for w in keywords}


@dataclass(frozen=True)
class SampleOptions:
    num: int = 5
    max_length: int | None = None  # characters of a free poem (None: 64); a form or a template sets its own
    seed: int = 0
    prime: str = ""
    argmax: bool = False
    temperature: float = 1.0
    top_k: int = 0  # sample among the k likeliest characters; 0: off
    top_p: float = 1.0  # sample among the likeliest characters holding this much probability; 1: off
    beam: int = 0  # beam search of this width; 0: off (sampling)
    acrostic: str = ""
    form: str = ""  # "" | wujue | qijue | wulv | qilv | ci:TUNE (a tune of symlstm/poetics/tables/ci_tunes.json, by any name)
    tones: str = ""  # "" (the form's own: loose) | strict | loose | rhyme | off (see `tone_choice`)
    pattern: str = ""  # zeqi | zeqi-rhyme | pingqi | pingqi-rhyme ("": any, chosen by the first line)
    rhyme: str = ""  # a character naming the rhyme group (with a form)
    keywords: tuple = ()  # each appears in every poem, as given, inside one line
    template: str = ""  # a poem with ＿ or _ for the characters to write; the rest stay
    candidates: int = 8  # with keywords or a template: poems drawn per poem returned, the likeliest kept
    couplet: str = ""  # a 上聯: write its 下聯 (the text returned is 上聯，下聯。)
    no_repeat: str = "auto"  # no bigram twice (`constraints.NoRepeat`): on | off | auto (greedy, beam, low temperature)

    def __post_init__(self):
        object.__setattr__(self, "form", canonical(self.form))  # a tune by any of its names

    def validate(self, vocab: Vocab):
        for name, value, top in (("--num", self.num, 1000), ("--candidates", self.candidates, 64)):
            if not 1 <= value <= top:
                raise DecodeError(f"{name} must be between 1 and {top}, got {value}")
        if self.max_length is not None and not 1 <= self.max_length <= 1000:
            raise DecodeError(f"--max-length must be between 1 and 1000, got {self.max_length}")
        if not 0 <= self.beam <= 64:
            raise DecodeError(f"--beam must be 0 (off) or at most 64, got {self.beam}")
        if not 0 <= self.seed < 2 ** 32:
            raise DecodeError(f"--seed must be between 0 and 2**32 - 1, got {self.seed}")
        if not self.temperature > 0:
            raise DecodeError(f"--temperature must be > 0, got {self.temperature}")
        if self.top_k < 0:
            raise DecodeError(f"--top-k must be 0 (off) or at least 1, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise DecodeError(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.form and not is_form(self.form):
            raise DecodeError(unknown_form("--form", self.form))
        if self.form.startswith(CI) and (self.pattern or self.rhyme):
            raise DecodeError("--pattern and --rhyme are for the regulated forms; a ci's tune fixes its rhymes")
        if self.beam and (self.argmax or self.top_k or self.top_p < 1 or self.temperature != 1.0):
            raise DecodeError("--beam searches for the likeliest poems: it does not combine with "
                              "--argmax, --temperature, --top-k or --top-p")
        if self.argmax and (self.top_k or self.top_p < 1):
            raise DecodeError("--argmax picks the likeliest character: it does not combine with --top-k or --top-p")
        if self.no_repeat not in ("auto", "on", "off"):
            raise DecodeError(f"--no-repeat {self.no_repeat!r}: choose auto, on or off")
        if self.tones not in TONE_MODES:
            raise DecodeError(f"--tones {self.tones!r}: choose {', '.join(TONE_MODES[1:])}")
        if self.couplet:
            self._validate_couplet(vocab)
        if self.template:
            form, _ = parse_template(self.template)
            if self.form and self.form != form:
                raise DecodeError(f"--template is a {form}, not the --form {self.form} asked for")
            if self.prime:
                raise DecodeError("--prime does not combine with --template: write the opening into the template")
        if (self.tones not in ("", "off") or self.rhyme or self.pattern or self.keywords) and not self.shape:
            raise DecodeError("--tones, --pattern, --rhyme and --keywords need --form or --template "
                              "(the tone patterns and the keyword slots are per form)")
        if self.pattern and self.pattern not in QUATRAIN:
            raise DecodeError(f"--pattern {self.pattern!r}: choose one of {', '.join(QUATRAIN)}")
        if self.pattern and self.tones in ("off", "rhyme"):
            raise DecodeError(f"--pattern is a tone pattern: it needs --tones strict or loose, not {self.tones}")
        if self.rhyme and self.tones == "off":
            raise DecodeError("--rhyme names the rhyme group, and --tones off keeps no rhyme: leave one of them out")
        if len(self.rhyme) > 1:
            raise DecodeError(f"--rhyme takes one character naming the rhyme group, got {self.rhyme!r}")
        for word in self.keywords:
            if not word or any(ch in PUNCT or not ch.strip() or ch in "＿_" for ch in word):
                raise DecodeError(f"--keywords {word!r}: a keyword is one or more characters, no punctuation")
            if len(word) > line_length(self.shape):
                raise DecodeError(f"--keywords {word}: longer than a line of a {self.shape} "
                                  f"({line_length(self.shape)} characters)")
        missing = vocab.unknown(self.prime + self.acrostic + self.rhyme + "".join(self.keywords) +
                                "".join(parse_template(self.template)[1].values() if self.template else ""))
        if missing:
            raise DecodeError(f"characters outside the vocabulary: {' '.join(missing)}")
        if self.max_length is not None and self.shape and self.max_length < poem_length(self.shape):
            raise DecodeError(f"--max-length {self.max_length}: a {self.shape} is {poem_length(self.shape)} characters "
                              "with its punctuation; raise --max-length or leave it out")
        starts = line_starts(self.shape) if self.shape else [0]
        clash = [(pos, ch) for pos, ch in zip(starts, self.acrostic) if pos < len(self.prime) and self.prime[pos] != ch]
        if clash:
            pos, ch = clash[0]
            raise DecodeError(f"--prime {self.prime} and --acrostic {self.acrostic}: the acrostic starts a line with "
                              f"{ch} where the prime has {self.prime[pos]}; give one of them, or a prime that agrees")
        if self.shape:
            lines = len(layout(self.shape))
            if len(self.acrostic) > lines:
                raise DecodeError(f"--acrostic has {len(self.acrostic)} characters but a {self.shape} has {lines} lines")
            rule = self.constraints(vocab, np.random.default_rng(self.seed))
            for k in range(len(self.prime)):
                if not rule.allowed(self.prime[:k])[vocab.stoi[self.prime[k]]]:
                    raise DecodeError(f"--prime {self.prime!r} does not fit --form {self.shape} at character {k + 1}")

    def _validate_couplet(self, vocab: Vocab):
        if self.form or self.template or self.acrostic or self.keywords or self.prime or self.tones not in ("", "off"):
            raise DecodeError("--first (a couplet) does not combine with --form, --template, --acrostic, --keywords, "
                              "--prime or --tones: the 上聯 sets the form and the tones")
        if not self.couplet or self.couplet[0] in PUNCT or self.couplet[-1] in PUNCT or \
                any(a in PUNCT and b in PUNCT for a, b in zip(self.couplet, self.couplet[1:])):
            raise DecodeError(f"--first {self.couplet!r}: give the 上聯 as characters, with punctuation only "
                              "between its clauses and none at its end")
        missing = vocab.unknown(self.couplet.translate({ord(p): None for p in PUNCT}))
        if missing:
            raise DecodeError(f"characters outside the vocabulary: {' '.join(missing)}")
        last = self.couplet[-1]
        tones = Lexicon.load().tone(last)  # the 上聯 is read with the supplement, as `score` reads a poem
        if tones != {"仄"}:
            read = "平" if tones == {"平"} else ("平 or 仄" if tones else "of unknown tone")
            raise DecodeError(f"--first {self.couplet}: it ends in {last}, {read}; a 上聯 ends in 仄 and its 下聯 "
                              "in 平 (if this is the 下聯, give the other line)")

    @property
    def start(self) -> str:
        """The text fed before generation: the prime, or for a couplet the 上聯 and its comma."""
        return self.couplet + "，" if self.couplet else self.prime

    @property
    def limit(self) -> int:
        """The longest text (start included) a poem may reach before <eos>."""
        if self.couplet:
            return 2 * len(self.couplet) + 2
        return poem_length(self.shape) if self.shape else (self.max_length or 64)

    @property
    def shape(self) -> str:
        """The form: --form, or the template's."""
        return self.form or (parse_template(self.template)[0] if self.template else "")

    @property
    def guarded(self) -> bool:
        """Whether bigram repeats are masked (`constraints.NoRepeat`): --no-repeat on, or auto for
        greedy, beam search and sampling below GUARD_BELOW, whose poems loop; never for a
        couplet, whose 下聯 takes no character twice anyway."""
        if self.couplet or self.no_repeat == "off":
            return False
        return self.no_repeat == "on" or bool(self.argmax or self.beam or self.temperature < GUARD_BELOW)

    @property
    def constrained(self) -> bool:
        return bool(self.shape or self.acrostic or self.top_k or self.top_p < 1 or self.beam or self.couplet or
                    self.guarded)

    @property
    def locked(self) -> bool:
        """Whether some characters are fixed ahead of the text (the candidates are then scored whole)."""
        return bool(self.template or self.keywords)

    def _asked(self) -> str:
        return " + ".join(r for r, on in (
            ("--template", self.template), ("--acrostic " + self.acrostic, self.acrostic),
            ("--keywords " + ",".join(self.keywords), self.keywords), ("--prime " + self.prime, self.prime),
            ("--tones " + self.tones, self.tones), ("--pattern " + self.pattern, self.pattern),
            ("--rhyme " + self.rhyme, self.rhyme)) if on)

    def constraints(self, vocab: Vocab, rng) -> Constraints:
        """This poem's constraints; keyword slots are drawn from rng (one plan per call)."""
        return self.rules(vocab, rng, 1)[0]

    def _fixed(self) -> dict:
        """The characters fixed ahead of the text: {position: character} (acrostic, prime, template)."""
        fixed = {**dict(zip(line_starts(self.shape), self.acrostic)), **dict(enumerate(self.prime))}
        if self.template:
            fixed.update(parse_template(self.template)[1])
        return fixed

    def _tone_rule(self, vocab: Vocab, mode: str, fixed: dict):
        """The tone rule of `mode` for this form and these fixed characters (None for off)."""
        if mode == "off":
            return None
        lex = Lexicon.load(supplement=False)
        if self.rhyme and not lex.groups.get(self.rhyme):
            raise DecodeError(f"--rhyme {self.rhyme}: not a 平-tone character of the 平水韻 table")
        form = self.shape
        return TuneTones(vocab, lex, form[len(CI):], mode, fixed) if form.startswith(CI) else \
            Tones(vocab, lex, form, mode, self.pattern, self.rhyme, fixed)

    def tone_choice(self, vocab: Vocab) -> tuple[str, str]:
        """(mode, note): the tone rule the poems are written under, and what the user should be told.

        A form keeps its rules unless told not to: --tones asked is used (and refused where the fixed
        characters cannot meet it); by default `loose` (the tones at the 2nd, 4th, 6th characters and
        the line ends, 孤平 and 三平尾 avoided, and the rhyme on 平 of one group, or as the tune says),
        or, where the characters a template, a prime, an acrostic or keywords fix fit no standard
        pattern under it, `rhyme` (the rhyme alone, decided by the fixed rhyme characters), else
        `off`, each with a note. No form (free text, a couplet): off, nothing to say."""
        form = self.shape
        if not form or self.couplet:
            return "off", ""
        name = f"a {form}" if form in FORMS else f"the tune {form[len(CI):]}"
        if self.tones == "off":
            return "off", f"--tones off: free verse in the layout of {name}, no tones or rhyme kept"
        fixed = self._fixed()
        # the rules to try, in order: the one asked for, else loose and what the asked options allow
        modes = [self.tones] if self.tones else ["loose"] if self.pattern else \
            ["loose", "rhyme"] if self.rhyme else ["loose", "rhyme", "off"]
        for mode in modes:
            rule = self._tone_rule(vocab, mode, fixed)
            fits = rule is None or bool(rule.names)
            if fits and self.keywords and mode != modes[-1]:  # the last: `rules` names a keyword without a slot
                feasible = (lambda locks: bool(rule.relocked(locks).names)) if rule else (lambda locks: True)
                fits = plan_keywords(tuple(self.keywords), form, fixed, feasible, np.random.default_rng(0)) is not None
            if fits:
                break
            if mode == modes[-1]:
                what = f"--pattern {self.pattern}" if self.pattern else \
                    "standard pattern" if form in FORMS else "template of the tune"
                default = "" if self.tones else " (the default" + (", with --rhyme" if self.rhyme else "") + ")"
                raise DecodeError(f"{self._asked()}: the tones of the fixed characters fit no {what} of a {form} "
                                  f"under --tones {mode}{default}")
        if self.tones or mode == "loose":
            return mode, ""
        kept = {"rhyme": "the rhyme alone is kept", "off": "neither tones nor rhyme are kept"}[mode]
        what = "standard pattern" if form in FORMS else "template"
        return mode, (f"the characters fixed by {self._asked()} fit no {what} of {name} under loose tones (the "
                      f"default), so {kept} (--tones {mode} asks for that without this note)")

    def rules(self, vocab: Vocab, rng, count: int, mode: str | None = None) -> list[Constraints]:
        """The constraints of `count` poems under the tone rule `mode` (default: `tone_choice`'s): one
        object for all, or with keywords one plan each (drawn from rng), sharing the tone rule's
        vocabulary tables."""
        if self.couplet:
            return [Constraints([Couplet(vocab, Lexicon.load(supplement=False), self.couplet, Lexicon.load())])] * count
        form = self.shape
        soft = (NoRepeat(vocab),) if self.guarded else ()
        if not form:
            return [Constraints([Shape(vocab, acrostic=self.acrostic)], soft)] * count
        fixed = self._fixed()
        tones = self._tone_rule(vocab, mode or self.tone_choice(vocab)[0], fixed)
        if not self.keywords:
            return [Constraints([Shape(vocab, form, fixed)] + ([tones] if tones else []), soft)] * count
        feasible = (lambda locks: bool(tones.relocked(locks).names)) if tones else (lambda locks: True)
        out = []
        for _ in range(count):
            locks = plan_keywords(tuple(self.keywords), form, fixed, feasible, rng)
            if locks is None:
                alone = [w for w in self.keywords if plan_keywords((w,), form, fixed, feasible, rng) is None]
                what = f"--keywords {alone[0]}: no slot" if alone else "no placement of all the keywords"
                chars = "".join(alone or self.keywords) if tones else ""
                unknown = [ch for ch in chars if not tones.lex.tone(ch)]
                why = f" ({' '.join(unknown)}: not in the 平水韻 table, so only where no rule reads the tone)" if unknown else ""
                raise DecodeError(f"{what} in a {form} keeps the form, the fixed characters, tones and rhyme of "
                                  f"{self._asked()}{why}")
            out.append(Constraints([Shape(vocab, form, locks)] + ([tones.relocked(locks)] if tones else []), soft))
        return out


def unsatisfiable(text: str, opts: SampleOptions) -> str:
    where = ""
    if opts.shape:
        starts = line_starts(opts.shape)
        line = sum(s <= len(text) for s in starts)
        where = f" (line {line}, character {len(text) - starts[line - 1] + 1})"
    return (f"no character can follow {text!r}{where}: {(opts._asked() or 'the options')} exclude every character "
            "there; loosen one of them (e.g. an acrostic character whose tone the pattern forbids)")


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
        self.banned = vocab.never_emitted_mask(compiled.cfg.dtype)

    def _primed(self, prime: str, rows: int, form: str = ""):
        """Feed <bos> (a model with form tokens: the form's token, <gushi> without a form) + prime to
        every row; returns (last token, h, c)."""
        h, c = self.m.zero_state(rows)
        tokens = [self.vocab.start(form_token(form=form) if form else "<gushi>")] + [self.vocab.stoi[ch] for ch in prime]
        for tok in tokens[:-1]:
            _, h, c = self.m.step(np.full(rows, tok, np.int32), h, c)
        return np.full(rows, tokens[-1], np.int32), h, c

    def sample(self, opts: SampleOptions) -> list[dict]:
        """The poems, each with `tone_rule` (the rule it was written under, `SampleOptions.tone_choice`)
        and, where that rule is not the one asked for or is off, the `note` saying so."""
        opts.validate(self.vocab)
        mode, note = opts.tone_choice(self.vocab)
        if opts.beam:
            poems = self.beam(opts, mode)
        elif opts.constrained:
            poems = self._in_form(opts, mode) or self._stepwise(opts, mode)
        else:
            poems = self._compiled(opts)
        for p in poems:
            p.update({"tone_rule": mode, **({"note": note} if note else {})})
        return poems

    def _in_form(self, opts: SampleOptions, mode: str | None = None) -> list[dict] | None:
        """A regulated form under strict, rhyme-only or no tones (an acrostic allowed), sampled or
        greedy, every poem in one compiled scan (`CompiledModel.generate_in_form`): the rules
        become tables once per set of options (kept by the vocabulary), not masks per character,
        and the poems are drawn as the step path draws them. None where the options need
        the step path: top-k/top-p, loose tones, a ci tune, a couplet, a prime, locked characters,
        the bigram guard (`SampleOptions.guarded`); and when a poem meets a position where nothing is
        allowed, so that the step path names it."""
        if opts.top_k or opts.top_p < 1 or opts.locked or opts.start or opts.guarded or opts.shape not in FORMS:
            return None
        rng = np.random.default_rng(opts.seed)
        mode = mode or opts.tone_choice(self.vocab)[0]
        key = ("form tables", opts.shape, mode, opts.pattern, opts.rhyme, opts.acrostic)
        tables = self.vocab.memo(key, lambda: opts.rules(self.vocab, rng, 1, mode)[0].tables())
        if tables is None:
            return None
        first, h, c = self._primed("", opts.num, opts.shape)
        uniform = rng.random((tables[0].shape[0], opts.num)).astype(self.m.cfg.dtype)
        tokens, logp = self.m.generate_in_form(first, h, c, uniform, tables, opts.temperature, opts.argmax)
        if (tokens == PAD).any():  # never allowed: written only where a position allowed nothing
            return None
        return [{"text": self.vocab.decode(tokens[:, b]), "score": float(logp[:, b].mean())} for b in range(opts.num)]

    def _compiled(self, opts: SampleOptions) -> list[dict]:
        first, h, c = self._primed(opts.prime, opts.num, opts.shape)
        n = max(1, opts.limit - len(opts.prime)) + 1
        rng = np.random.default_rng(opts.seed)
        shape = (n, opts.num, len(self.vocab))
        noise = np.zeros(shape, self.m.cfg.dtype) if opts.argmax else gumbel_noise(rng, shape, self.m.cfg.dtype)
        tokens, _, _ = self.m.generate(first, h, c, noise, opts.temperature, self.banned)
        return [{"text": (opts.prime + self.vocab.decode(tokens[:, b]))[:opts.limit]} for b in range(opts.num)]

    def _stepwise(self, opts: SampleOptions, mode: str | None = None) -> list[dict]:
        """One row per poem, or opts.candidates rows per poem when characters are locked ahead (each
        with its own keyword plan); a poem's score counts every token, locked ones included, so the
        likeliest candidate is the one whose text leads best into what was fixed."""
        rng = np.random.default_rng(opts.seed)
        per = opts.candidates if opts.locked else 1
        rows = opts.num * per
        rules = opts.rules(self.vocab, rng, rows, mode)
        tok, h, c = self._primed(opts.start, rows, opts.shape)
        texts = [opts.start] * rows
        done = np.zeros(rows, bool)
        scores = np.zeros(rows)
        limit = opts.limit
        for _ in range(limit + 1 - len(opts.start)):
            logp, h, c = self.m.step(tok, h, c)
            for b in np.flatnonzero(~done):
                allowed = rules[b].allowed(texts[b]) if len(texts[b]) < limit else rules[b].only(EOS)
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
        mean = scores / np.array([len(t) - len(opts.start) + 1 for t in texts])
        best = [k * per + int(np.argmax(mean[k * per:(k + 1) * per])) for k in range(opts.num)]
        return [{"text": texts[b], "score": float(mean[b])} for b in best]

    def beam(self, opts: SampleOptions, mode: str | None = None) -> list[dict]:
        """Beam search of width opts.beam over mean log-probability per token (length-normalised);
        the greedy poem is always a candidate. Returns the best opts.num (at most opts.beam).
        Keywords are placed once (the plan drawn from opts.seed)."""
        rule = opts.rules(self.vocab, np.random.default_rng(opts.seed), 1, mode)[0]
        K = opts.beam
        limit = opts.limit
        finished = []
        for width in (1, K):  # width 1 is the greedy poem
            tok, h, c = self._primed(opts.start, 1, opts.shape)
            beams = [(0.0, opts.start)]  # (summed log-prob, text)
            for _ in range(limit + 1 - len(opts.start)):
                logp, h, c = self.m.step(tok, h, c)
                cand = []
                for b, (score, text) in enumerate(beams):
                    allowed = rule.allowed(text) if len(text) < limit else rule.only(EOS)
                    if not allowed.any():
                        raise DecodeError(unsatisfiable(text, opts))
                    lp = np.where(allowed, logp[b], -np.inf)
                    for t in np.argsort(-lp)[:width]:
                        if np.isfinite(lp[t]):
                            cand.append((score + lp[t], text, int(t), b))
                cand.sort(key=lambda z: -z[0])
                keep = []
                for score, text, t, b in cand:
                    if t == EOS:
                        finished.append((score / (len(text) - len(opts.start) + 1), text))
                    elif len(keep) < width:
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
