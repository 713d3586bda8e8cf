"""What may come next: the decoding constraints of one poem, behind one small interface.

Every constraint answers `allowed(text)`: a bool mask (V,) over the vocabulary for the token after
`text` (the poem so far, prime included, no special tokens). `Constraints` ANDs its parts; the
sampler and the beam search call only that. The parts: `Shape` (the layout of a form: line or
clause lengths, punctuation, <eos>; the characters locked at positions by a template, keywords, an
acrostic or a prime), `Tones` (a regulated form's standard patterns, its rhyme, and the rules of
`verse.py`), `TuneTones` (a ci tune's template), `Couplet` (the 下聯 of a 上聯) and `NoRepeat` (no
character bigram twice, which greedy and beam search would otherwise write). Keywords become
locks by planning their slots before generation (`plan_keywords`). Errors are `DecodeError`s, raised
before generation.
"""
import copy
import re

import numpy as np

from symlstm.errors import UserError
from symlstm.poetics.forms import CHAR, CI, FORMS, form_of, layout, line_starts, plan
from symlstm.poetics.lexicon import CI_TONES, PING, ZE, Lexicon
from symlstm.poetics.script import ASCII_PUNCT, CJK, PUNCT
from symlstm.poetics.tunes import load as load_tunes
from symlstm.poetics.verse import (
    QUATRAIN,
    guping_columns,
    is_b_line,
    loose_columns,
    pattern_lines,
    read_columns,
    sanping_column,
)
from symlstm.vocab import EOS, Vocab

BLANKS = "＿_"  # a free character in a template
MARK_STAND_INS = {"、": "，", "；": "，", "：": "，", "！": "。", "？": "。"}  # for a vocabulary without the mark


class DecodeError(UserError, ValueError):
    """Decoding options that cannot be met, naming the option."""


class Shape:
    """The form (line lengths, ，。, <eos> after the last line) and the locked characters
    {position in the text: character}; without a form, an acrostic on free text."""

    def __init__(self, vocab: Vocab, form: str = "", locks: dict | None = None, acrostic: str = ""):
        self.vocab, self.form, self.locks, self.acrostic = vocab, form, dict(locks or {}), acrostic
        self.base = np.ones(len(vocab), bool)
        self.base[vocab.never_emitted] = False
        self.punct_ids = {ch: vocab.stoi[ch] for ch in PUNCT if ch in vocab.stoi}
        self.chars = vocab.memo("line characters", lambda: self._line_characters(vocab))
        self.plan = plan(form) if form else ""
        for mark, stand_in in MARK_STAND_INS.items():  # a model that never saw 、 writes ，there
            if mark in self.plan and mark not in self.punct_ids and stand_in in self.punct_ids:
                self.punct_ids[mark] = self.punct_ids[stand_in]
        missing = sorted(set(self.plan) - {CHAR} - set(self.punct_ids))
        if missing:
            raise DecodeError(f"the vocabulary lacks {' '.join(missing)}: the form {form} cannot be enforced with this model")

    def _line_characters(self, vocab: Vocab) -> np.ndarray:
        """What a character position may hold: not <eos>, punctuation or whitespace, and Han
        characters only where the vocabulary has any (not the corpus' stray 《》, kana or Latin)."""
        chars = self.base.copy()
        chars[EOS] = False
        chars[list(self.punct_ids.values())] = False
        chars[[i for i, s in enumerate(vocab.itos) if not s.strip()]] = False
        han = np.array([bool(re.fullmatch(CJK, s)) for s in vocab.itos])
        return chars & han if han.any() else chars

    def only(self, token: int) -> np.ndarray:
        m = np.zeros_like(self.base)
        m[token] = True
        return m

    def at(self, pos: int) -> np.ndarray:
        """What a form's text position may hold: it depends on the position alone."""
        if pos >= len(self.plan):
            return self.only(EOS)
        if self.plan[pos] != CHAR:
            return self.only(self.punct_ids[self.plan[pos]])
        return self.only(self.vocab.stoi[self.locks[pos]]) if pos in self.locks else self.chars

    def allowed(self, text: str) -> np.ndarray:
        if self.form:
            return self.at(len(text))
        if self.acrostic:
            line = sum(ch in PUNCT for ch in text)
            if (not text or text[-1] in PUNCT) and line < len(self.acrostic):
                return self.only(self.vocab.stoi[self.acrostic[line]])
            if line < len(self.acrostic):
                return self.base & ~self.only(EOS)
        return self.base


def single_tones(vocab: Vocab, lex: Lexicon) -> dict:
    """{PING: mask, ZE: mask}: the tokens whose every reading has that tone, once per vocabulary
    and lexicon (the lexicon is kept with the table, so its id stays its own)."""
    return vocab.memo(("single tones", id(lex)), lambda: (
        lex, {t: np.array([lex.tone(s) == {t} for s in vocab.itos]) for t in (PING, ZE)}))[1]


def _rhyme_groups(vocab: Vocab, lex: Lexicon) -> tuple[dict, np.ndarray]:
    """The 平 rhyme groups the vocabulary holds (group -> number) and each token's group number
    (-1 unless it is 平 with exactly one group)."""
    groups = sorted({g for s in vocab.itos if lex.tone(s) == {PING} for g in lex.groups.get(s, ())})
    index = {g: k for k, g in enumerate(groups)}
    return index, np.array([index[next(iter(lex.groups[s]))] if lex.tone(s) == {PING}
                            and len(lex.groups.get(s, ())) == 1 else -1 for s in vocab.itos])


def fits(lex: Lexicon, ch: str, tone: str, fixed: bool) -> bool:
    """Whether `ch` may stand where a pattern asks `tone`: a character the sampler writes must have
    that one reading; one the user fixed (keyword, acrostic, template) may be a 多音字 wherever either
    reading fits, as the scorer reads it (故鄉 in a strict 五絕)."""
    return tone in lex.tone(ch) if fixed else lex.tone(ch) == {tone}


class Tones:
    """A form's tone patterns and rhyme, as masks.

    mode 'strict' fixes every position by one standard pattern, 'loose' the 2nd/4th/6th characters
    and the line ends (一三五不論) and forbids 孤平 and 三平尾, 'rhyme' the line ends only. Where a
    pattern fixes a tone, only characters whose every reading has that tone may be written (a 多音字
    may not); a character the user fixed may be a 多音字 wherever either reading fits (`fits`).
    Rhyme positions take 平 characters of exactly one rhyme group, the same for all, each at
    most once (no 重韻), the group fixed by `rhyme_char`, by a locked rhyme character or by the first
    rhyme written. The pattern is `pattern` if given, else every pattern still consistent with the
    text and the locked characters.
    """

    def __init__(self, vocab: Vocab, lex: Lexicon, form: str, mode: str = "strict", pattern: str = "",
                 rhyme_char: str = "", locks: dict | None = None):
        self.vocab, self.lex, self.form, self.mode = vocab, lex, form, mode
        self.n, self.lines = FORMS[form]
        self.locks = dict(locks or {})
        self.only = single_tones(vocab, lex)
        self.toned = vocab.memo(("toned", id(lex)), lambda: (lex, np.array([bool(lex.tone(s)) for s in vocab.itos])))[1]
        _, self.group_index, self.group_of = vocab.memo(("rhyme groups", id(lex)),
                                                        lambda: (lex, *_rhyme_groups(vocab, lex)))
        rhymes_needed = self.lines // 2 + 1
        sizes = np.bincount(self.group_of[self.group_of >= 0], minlength=len(self.group_index))
        self.roomy = np.isin(self.group_of, np.flatnonzero(sizes >= rhymes_needed))  # groups that can fill a poem
        self.fixed = {self.group_index[g] for g in lex.groups.get(rhyme_char, ()) if g in self.group_index} \
            if rhyme_char else None
        self.expected = {name: pattern_lines(name, form) for name in ([pattern] if pattern else QUATRAIN)}
        self.names = [name for name in self.expected if self._consistent(name, self.locks)]

    def relocked(self, locks: dict) -> "Tones":
        """The same rule with other locked characters (the vocabulary tables are shared)."""
        other = copy.copy(self)
        other.locks = dict(locks)
        other.names = [name for name in self.expected if other._consistent(name, other.locks)]
        return other

    def _enforced(self, col: int) -> bool:
        return self.mode == "strict" or col == self.n - 1 or (self.mode == "loose" and col in loose_columns(self.n))

    def _rhymes(self, name: str, line: int) -> bool:
        return self.expected[name][line][-1] == PING

    def _rule_tone(self, name: str, line: int, col: int, known: dict):
        """The tone the loose rules demand at (line, col) given the line's known characters, or None."""
        if self.mode != "loose":
            return None
        expected = self.expected[name][line]
        if expected.endswith(PING * 2) and col == sanping_column(self.n):
            return ZE  # else three 平 at the end
        p, q = guping_columns(self.n)
        if is_b_line(expected) and col in (p, q):
            other = known.get(q if col == p else p)
            if other is not None and self.lex.tone(other) != {PING}:
                return PING  # else 孤平
        return None

    def _lines(self, filled: dict) -> dict:
        """{line: {col: character}} of the filled positions that hold characters."""
        out = {}
        for pos, ch in filled.items():
            line, col = divmod(pos, self.n + 1)
            if col < self.n and line < self.lines:
                out.setdefault(line, {})[col] = ch
        return out

    def _tone(self, name: str, line: int, col: int, known: dict):
        return self.expected[name][line][col] if self._enforced(col) else self._rule_tone(name, line, col, known)

    def _rhyme_chars(self, name: str, lines: dict, skip: int = -1) -> list:
        return [cols[self.n - 1] for i, cols in lines.items()
                if i != skip and self.n - 1 in cols and self._rhymes(name, i)]

    def _consistent(self, name: str, filled: dict) -> bool:
        lines = self._lines(filled)
        for line, cols in lines.items():
            for col, ch in cols.items():
                tone = self._tone(name, line, col, cols)
                if tone is not None and not fits(self.lex, ch, tone, fixed=line * (self.n + 1) + col in self.locks):
                    return False
                if tone is None and self.mode == "loose" and col in read_columns(self.n) and not self.lex.tone(ch):
                    return False  # as `allowed` asks: a column a rule reads takes a character of known tone
        rhymes = self._rhyme_chars(name, lines)
        ids = [self.group_of[self.vocab.stoi[ch]] if ch in self.vocab.stoi else -1 for ch in rhymes]
        if any(g < 0 for g in ids) or len(set(ids)) > 1 or len(set(rhymes)) < len(rhymes):
            return False
        return not (ids and self.fixed is not None and ids[0] not in self.fixed)

    def allowed(self, text: str) -> np.ndarray:
        line, col = divmod(len(text), self.n + 1)
        out = np.zeros(len(self.vocab), bool)
        if line >= self.lines or col == self.n:
            return ~out  # punctuation or <eos>: Shape decides
        filled = {**self.locks, **dict(enumerate(text))}
        lines = self._lines(filled)
        if len(text) in self.locks:  # a fixed character, checked against the patterns by `_consistent`
            return np.full(len(self.vocab), any(self._consistent(name, filled) for name in self.names))
        for name in self.names:
            if not self._consistent(name, filled):
                continue
            m = np.ones(len(self.vocab), bool)
            tone = self._tone(name, line, col, lines.get(line, {}))
            if tone is not None:
                m &= self.only[tone]
            elif self.mode == "loose" and col in read_columns(self.n):
                m &= self.toned  # a free column a rule still reads (孤平, 三平尾): a character of known tone
            if col == self.n - 1 and self._rhymes(name, line):
                others = self._rhyme_chars(name, lines, skip=line)
                groups = {self.group_of[self.vocab.stoi[ch]] for ch in others} or self.fixed
                m &= np.isin(self.group_of, list(groups)) if groups is not None else self.roomy
                m[[self.vocab.stoi[ch] for ch in others]] = False  # 重韻
            out |= m
        return out

    def tables(self):
        """The rule as tables over the form's text positions, for generation inside a compiled
        scan (`sampling.generate_in_form`), or None where a mode's tones depend on other characters
        of the line (loose) or a locked character stands at a rhyme position. P patterns (the
        consistent ones), N = len(plan) + 1 positions (the last: <eos>), V tokens, position first
        (the scan's sequence axis):

            tone_ok (N, P, V)  the tokens pattern q lets stand at position p by tone
            rhyme_at (N, P)    whether p ends a rhyming line of pattern q
            first_rhyme (V,)   what may stand at the first rhyme written: 平 of one roomy group
                               (or of --rhyme's group)
            group_of (V,)      each token's rhyme group, -1 for none

        A rhyme position of pattern q then takes tone_ok tokens of q's group once one is written,
        each rhyme character once; a pattern stays alive while every token written fits it. This
        is `allowed` for the strict and rhyme modes: the tests hold the two against each other.
        """
        if self.mode == "loose":
            return None
        positions = len(plan(self.form)) + 1
        V = len(self.vocab)
        tone_ok = np.ones((positions, len(self.names), V), bool)
        rhyme_at = np.zeros((positions, len(self.names)), bool)
        for q, name in enumerate(self.names):
            for pos in range(positions - 1):
                line, col = divmod(pos, self.n + 1)
                if col == self.n:
                    continue  # punctuation: Shape decides
                tone = self._tone(name, line, col, {})
                if tone is not None and pos not in self.locks:  # a fixed character: `names` checked it
                    tone_ok[pos, q] = self.only[tone]
                if col == self.n - 1 and self._rhymes(name, line):
                    if pos in self.locks:
                        return None
                    rhyme_at[pos, q] = True
        first = np.isin(self.group_of, list(self.fixed)) if self.fixed is not None else self.roomy
        return tone_ok, rhyme_at, first, self.group_of.astype(np.int32)


def opposed_columns(clause_length: int) -> list[int]:
    """The columns of a couplet clause whose tones the other clause must oppose: the 2nd, 4th, 6th
    characters and the last (0-based)."""
    return sorted({c for c in range(1, clause_length, 2)} | {clause_length - 1})


class Couplet:
    """The 下聯 of a given 上聯 (對聯), written after the prime `上聯，`: the same clause lengths and
    punctuation, ending in 。; opposite tones at `opposed_columns` of each clause (a character whose
    every reading in `lex` is opposite; nothing is asked where the 上聯's character reads both ways
    or its tone is unknown); no character of the 上聯, and none twice, except that where the 上聯
    repeats a character (疊字) the 下聯 repeats its own at the same positions. The 上聯's tones are
    read in `reading` (default `lex`): the decoder reads them with the lexicon's supplement, as
    `score` would, and writes the 下聯 with characters the 平水韻 table itself is sure of."""

    def __init__(self, vocab: Vocab, lex: Lexicon, first: str, reading: Lexicon | None = None):
        self.shape = Shape(vocab, "")
        self.vocab, self.first, self.start = vocab, first, len(first) + 1
        self.punct_ids = {**{m: vocab.stoi[s] for m, s in MARK_STAND_INS.items() if s in vocab.stoi},
                          **self.shape.punct_ids}
        missing = sorted(set(first + "，。") & set(PUNCT) - set(self.punct_ids))
        if missing:
            raise DecodeError(f"the vocabulary lacks {' '.join(missing)}: this model cannot write the couplet")
        self.only_tone = single_tones(vocab, lex)
        self.tone_at, col = {}, 0
        for k, ch in enumerate(first):
            if ch in PUNCT:
                col = 0
                continue
            end = k + 1 == len(first) or first[k + 1] in PUNCT
            length = next((j for j in range(k, len(first)) if first[j] in PUNCT), len(first)) - k + col
            if (col in opposed_columns(length) or end) and (reading or lex).definite(ch):
                self.tone_at[k] = {PING: ZE, ZE: PING}[(reading or lex).definite(ch)]
            col += 1
        for k, tone in list(self.tone_at.items()):  # a 疊字 is chosen at its first place: ask the tone there
            self.tone_at[first.find(first[k])] = tone
        self.banned = np.zeros(len(vocab), bool)
        self.banned[[vocab.stoi[ch] for ch in set(first) if ch in vocab.stoi]] = True

    def only(self, token: int) -> np.ndarray:
        return self.shape.only(token)

    def allowed(self, text: str) -> np.ndarray:
        k = len(text) - self.start
        if k > len(self.first):
            return self.only(EOS)
        if k == len(self.first):
            return self.only(self.punct_ids["。"])
        ch = self.first[k]
        if ch in PUNCT:
            return self.only(self.punct_ids[ch])
        second = text[self.start:]
        earlier = self.first.find(ch)
        if earlier < k:  # 疊字: mirror the 下聯's own character
            return self.only(self.vocab.stoi[second[earlier]])
        m = self.shape.chars & ~self.banned
        m[[self.vocab.stoi[c] for c in set(second) if c in self.vocab.stoi and c not in PUNCT]] = False
        if k in self.tone_at:
            m &= self.only_tone[self.tone_at[k]]
        return m


def bigram_places(text: str) -> list[tuple[str, int, int]]:
    """(bigram, line, column) of every two consecutive characters inside a line or clause of `text`
    (punctuation ends a line; a bigram never spans one)."""
    out, line, col = [], 0, 0
    for a, b in zip(text, text[1:]):
        if a in PUNCT:
            line, col = line + 1, 0
            continue
        if b not in PUNCT:
            out.append((a + b, line, col))
        col += 1
    return out


def repeated_bigrams(text: str) -> tuple[int, int]:
    """(repeats, bigrams): how many of the text's bigrams (`bigram_places`) equal an earlier one."""
    places = bigram_places(text)
    seen, repeats = set(), 0
    for bigram, _, _ in places:
        repeats += bigram in seen
        seen.add(bigram)
    return repeats, len(places)


def repeat_allowed(earlier: list[tuple[int, int]], bigram: str, line: int, col: int) -> bool:
    """Whether a poem may write `bigram` again at (line, col), having written it at `earlier`
    places: a 疊字 (萋萋) may recur, and so may a parallel repeat, the same bigram at the same column
    of the other line of a couplet (lines 1–2, 3–4 …: 人面桃花 … 人面不知), as the corpus writes
    them; any other repeat is what a decoder's loop looks like."""
    return bigram[0] == bigram[1] or (line % 2 == 1 and (line - 1, col) in earlier)


class NoRepeat:
    """No character bigram twice in a poem but the repeats `repeat_allowed` keeps, and no character
    three times in a row: after `text`, a token that would make either is masked out. The loop guard of greedy and beam
    search, whose likeliest poem repeats itself (不知不是人間事，不是人間不得歸), like other decoders'
    `no_repeat_ngram_size=2`, with the tradition's own repeats kept."""

    def __init__(self, vocab: Vocab):
        self.vocab = vocab
        self.base = np.ones(len(vocab), bool)

    def allowed(self, text: str) -> np.ndarray:
        if not text or text[-1] in PUNCT:
            return self.base  # a line's first character completes no bigram
        places = bigram_places(text + "一")  # the last place: the bigram the next token completes
        _, line, col = places[-1]
        earlier = {}
        for bigram, ln, c in places[:-1]:
            earlier.setdefault(bigram, []).append((ln, c))
        m = self.base.copy()
        for bigram, at in earlier.items():
            if bigram[0] == text[-1] and bigram[1] in self.vocab.stoi and not repeat_allowed(at, bigram, line, col):
                m[self.vocab.stoi[bigram[1]]] = False
        if text[-2:] == text[-1] * 2 and text[-1] in self.vocab.stoi:
            m[self.vocab.stoi[text[-1]]] = False  # a 疊字 is two of a character, not three
        return m

    def only(self, token: int) -> np.ndarray:
        m = np.zeros(len(self.vocab), bool)
        m[token] = True
        return m


class Constraints:
    """The parts of one poem's constraints; `allowed(text)` is their AND, and the AND of the `soft`
    parts (`NoRepeat`) with it wherever that leaves a token: a character the user fixed, or the only
    rhyme left, is written even where it repeats a bigram."""

    def __init__(self, parts: list, soft: tuple = ()):
        self.parts, self.soft = parts, tuple(soft)

    def allowed(self, text: str) -> np.ndarray:
        m = self.parts[0].allowed(text)
        for part in self.parts[1:]:
            m = m & part.allowed(text)
        for part in self.soft:
            kept = m & part.allowed(text)
            m = kept if kept.any() else m
        return m

    def only(self, token: int) -> np.ndarray:
        return self.parts[0].only(token)

    def tables(self):
        """The arrays of `sampling.generate_in_form` for a form with strict, rhyme-only or no tones
        (see `Tones.tables`), or None where only the step path can decode these constraints."""
        shape, rest = self.parts[0], self.parts[1:]
        if self.soft or not isinstance(shape, Shape) or not shape.form or shape.form not in FORMS or \
                any(not isinstance(part, Tones) for part in rest):
            return None
        positions = len(shape.plan) + 1
        layout_mask = np.stack([shape.at(pos) for pos in range(positions)])  # (N, V)
        if not rest:
            V = len(shape.vocab)
            return (layout_mask, np.ones((positions, 1, V), bool), np.zeros((positions, 1), bool),
                    np.ones(V, bool), np.full(V, -1, np.int32))
        tones = rest[0].tables()
        return None if tones is None else (layout_mask, *tones)


def parse_template(template: str) -> tuple[str, dict]:
    """A template such as 春眠不覺曉，＿＿＿＿＿。… -> (form, {position: locked character}); ASCII
    marks (`,` `.`) read as `score` reads them (`script.ASCII_PUNCT`)."""
    typed, template = template, template.strip().translate(ASCII_PUNCT)
    blanked = "".join("一" if ch in BLANKS else ch for ch in template)
    form = form_of(blanked)
    if form is None:
        raise DecodeError(f"--template {typed!r}: not 4 or 8 lines of 5 or 7 characters (＿ or _ for a free "
                          "one), each ending in ，or 。 alternately")
    return form, {k: ch for k, ch in enumerate(template) if ch not in BLANKS and ch not in PUNCT}


def slots(keyword: str, form: str) -> list[list[int]]:
    """Every run of positions in a form poem that can hold the keyword inside one line or clause."""
    out, start = [], 0
    for n, _ in layout(form):
        out += [[start + col + j for j in range(len(keyword))] for col in range(n - len(keyword) + 1)]
        start += n + 1
    return out


def _ci_rhymes(vocab: Vocab, lex: Lexicon) -> tuple[dict, dict]:
    """Per tone class of 詞林正韻 (平, 上去, 入): the tokens that rhyme only in that class, and per
    (部, class) the tokens that can rhyme there."""
    rhymes = [lex.ci_rhymes(s) for s in vocab.itos]
    pure = {c: np.array([bool(r) and {x for _, x in r} == {c} for r in rhymes]) for c in CI_TONES}
    bu = {(b, c): np.array([(b, c) in r for r in rhymes]) for c in CI_TONES for b in range(1, 20)}
    return pure, bu


class TuneTones:
    """A ci tune's template as masks: under 'strict' every position whose tone the template decides,
    under 'loose' those at the 2nd, 4th, 6th character of a clause; in every mode the rhymes. A rhyme
    position of a segment takes characters whose every reading rhymes in the segment's tone class
    (平, 上去 or 入), sharing a 部 of 詞林正韻 with the segment's other rhymes, none twice.
    Like `Tones`, `names` is empty when the locked characters cannot fit the template."""

    def __init__(self, vocab: Vocab, lex: Lexicon, tune: str, mode: str = "strict", locks: dict | None = None):
        t = load_tunes()[tune]
        self.vocab, self.lex, self.mode, self.locks = vocab, lex, mode, dict(locks or {})
        places, starts = plan(CI + tune), line_starts(CI + tune)
        self.bare = {pos: k for k, pos in enumerate(p for p, ch in enumerate(places) if ch == CHAR)}  # position -> char index
        self.col = {pos: pos - max(s for s in starts if s <= pos) for pos in self.bare}  # column within the clause
        self.tones, self.classes = t["tones"], t["segments"]
        self.segment = {k: s for k, s in t["rhymes"]}
        self.only = single_tones(vocab, lex)
        _, self.pure, self.bu = vocab.memo(("ci rhymes", id(lex)), lambda: (lex, *_ci_rhymes(vocab, lex)))
        self.names = ["tune"] if self._consistent(self.locks) else []

    def relocked(self, locks: dict) -> "TuneTones":
        other = copy.copy(self)
        other.locks = dict(locks)
        other.names = ["tune"] if other._consistent(other.locks) else []
        return other

    def _tone(self, pos: int):
        k = self.bare[pos]
        tone = self.tones[k]
        if tone == "〇" or (self.mode == "loose" and self.col[pos] % 2 == 0) or self.mode == "rhyme":
            tone = None
        if k in self.segment:
            tone = PING if self.classes[self.segment[k]] == "平" else ZE
        return tone

    def _common(self, filled: dict, segment: int, skip: int = -1) -> tuple[set | None, list]:
        """The 部 the filled rhymes of a segment share (None: none filled yet), and those characters."""
        c = self.classes[segment]
        chars = [ch for pos, ch in filled.items() if pos in self.bare and pos != skip
                 and self.segment.get(self.bare[pos]) == segment]
        common = None
        for ch in chars:
            bus = {b for b, x in self.lex.ci_rhymes(ch) if x == c}
            common = bus if common is None else common & bus
        return common, chars

    def _consistent(self, filled: dict) -> bool:
        for pos, ch in filled.items():
            if pos not in self.bare:
                continue
            tone = self._tone(pos)
            fixed = pos in self.locks and self.bare[pos] not in self.segment  # off the rhymes: one 部 there
            if tone is not None and not fits(self.lex, ch, tone, fixed):
                return False
        for s in range(len(self.classes)):
            common, chars = self._common(filled, s)
            if (common is not None and not common) or len(set(chars)) < len(chars):
                return False
        return True

    def allowed(self, text: str) -> np.ndarray:
        pos = len(text)
        m = np.ones(len(self.vocab), bool)
        if pos not in self.bare:
            return m  # punctuation or <eos>: Shape decides
        tone = self._tone(pos)
        if tone is not None and pos not in self.locks:  # a fixed character: `_consistent` checked it
            m &= self.only[tone]
        k = self.bare[pos]
        if k in self.segment:
            s = self.segment[k]
            c = self.classes[s]
            common, chars = self._common({**self.locks, **dict(enumerate(text))}, s, skip=pos)
            m &= self.pure[c]
            if common is not None:
                m &= np.logical_or.reduce([self.bu[b, c] for b in common]) if common else False
            m[[self.vocab.stoi[ch] for ch in chars if ch in self.vocab.stoi]] = False  # 重韻
        return m


def plan_keywords(keywords: tuple, form: str, fixed: dict, feasible, rng) -> dict | None:
    """Locks placing every keyword in a slot that keeps `feasible(locks)` true, the slots tried in
    random order (backtracking); None when no placement exists."""
    def place(k: int, locks: dict):
        if k == len(keywords):
            return locks
        options = slots(keywords[k], form)
        for s in rng.permutation(len(options)):
            new = dict(locks)
            if all(new.setdefault(p, ch) == ch for p, ch in zip(options[s], keywords[k])) and feasible(new):
                found = place(k + 1, new)
                if found is not None:
                    return found
        return None

    return place(0, dict(fixed))
