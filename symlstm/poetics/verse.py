"""Regulated verse (近體詩): the standard tone patterns, the rules by their traditional names, and a
checker that names every rule a poem breaks.

Patterns: a five-character line is one of A 仄仄平平仄, B 平平仄仄平, C 平平平仄仄, D 仄仄仄平平; a
seven-character line puts two characters of the opposite tone in front. Quatrains follow 粘 and 對:
仄起 ABCD, 仄起入韻 DBCD, 平起 CDAB, 平起入韻 BDAB (for five characters); a 律詩 is the quatrain
followed by its 不入韻 form. Names say what the form's own first line does: pingqi (平起, the 2nd
character 平) and -rhyme (首句入韻, the first line rhymes).

The rules (RULES) are checked from the tones themselves, not against one pattern, so that a fault is
named where it is: 一三五不論，二四六分明 within a line, 對 inside a couplet, 粘 between couplets, the
line ends, 孤平, 三平尾, the rhyme. A 多音字 counts as whichever reading fits; the licensed
variations (拗救 rescued by the next line, 特拗, 孤平拗救, 孤雁出群) are notes, not faults. The
decoding constraints (`constraints.py`) enforce the same rules and read their columns from here.

Which form a text is, when nobody says, is `judge.py`'s question; this module checks one form.
"""
from dataclasses import dataclass, field

from symlstm.poetics.forms import CI, FORMS, form_of
from symlstm.poetics.lexicon import PING, ZE, Lexicon, neighbouring
from symlstm.poetics.script import clauses, split_lines
from symlstm.poetics.tunes import load as load_tunes
from symlstm.poetics.tunes import parse_layout

FIVE = {"A": "仄仄平平仄", "B": "平平仄仄平", "C": "平平平仄仄", "D": "仄仄仄平平"}
QUATRAIN = {"zeqi": "ABCD", "zeqi-rhyme": "DBCD", "pingqi": "CDAB", "pingqi-rhyme": "BDAB"}
UNRHYMED = {"zeqi": "zeqi", "zeqi-rhyme": "zeqi", "pingqi": "pingqi", "pingqi-rhyme": "pingqi"}
RULES = {  # rule -> what breaking it means
    "平仄": "the 2nd, 4th (6th) characters of a line do not alternate, or a line that does not rhyme ends in 平",
    "失對": "the two lines of a couplet have the same tone at their 2nd character",
    "失粘": "a couplet's first line differs in tone at its 2nd character from the line before",
    "孤平": "a line rhyming in 平 has a single 平 besides the rhyme (仄平仄仄平)",
    "三平尾": "a line ends in three 平 (三平調)",
    "出韻": "a rhyme character that is 仄 or outside the rhyme group (落韻)",
    "重韻": "the same rhyme character twice",
}
TONE_RULES = ("平仄", "失對", "失粘", "孤平", "三平尾")


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


def loose_columns(n: int) -> tuple:
    """二四六分明: the 2nd, 4th (and 6th) characters, 0-based."""
    return (1, 3) if n == 5 else (1, 3, 5)


def guping_columns(n: int) -> tuple:
    """The two columns of a 平-rhyming B line (平平仄仄平) of which one must stay 平: 孤平 when both
    are 仄. The 1st and 3rd characters (5), the 3rd and 5th (7)."""
    return n - 5, n - 3


def sanping_column(n: int) -> int:
    """The column that must be 仄 in a D line (仄仄仄平平), or its end is three 平 (三平尾)."""
    return n - 3


def read_columns(n: int) -> set:
    """The columns some rule reads the tone of: 二四六, the 孤平 columns, the last three (三平尾,
    the line end). All five of a five-character line; all but the 1st of a seven."""
    return set(loose_columns(n)) | set(guping_columns(n)) | set(range(sanping_column(n), n))


def is_b_line(expected: str) -> bool:
    """The line type where 孤平 can happen: ends 平 with 仄 before it (平平仄仄平)."""
    return expected[-1] == PING and expected[-2] == ZE


@dataclass(frozen=True)
class Fault:
    rule: str  # a key of RULES
    line: int  # 1-based
    char: int  # 1-based within the line
    detail: str

    def __str__(self):
        return f"line {self.line}, character {self.char}: {self.rule}: {self.detail}"


@dataclass
class Verdict:
    form: str | None
    pattern: str | None = None  # the nearest standard pattern's name
    label: str = ""
    expected: list | None = None
    marks: list | None = None  # per line: the tones as read, × where a tone rule is broken
    strict_mismatches: int = 0  # against the nearest pattern, at every position
    loose_mismatches: int = 0  # against the nearest pattern, at 二四六
    faults: list = field(default_factory=list)  # Fault, in line order
    notes: list = field(default_factory=list)  # licensed variations, in words
    rhyme_note: str = ""  # the rhyme group, or why there is none
    unjudged: list = field(default_factory=list)  # characters the lexicon lacks where a rule reads them
    undecided: tuple = ()  # "tones", "rhyme": the checks an unjudged character left open
    runner_up: str | None = None  # `judge.judge`: the next best form, when it is within two faults
    runner_up_faults: int = 0

    @property
    def tones_ok(self) -> bool:
        """No tone rule broken, and none left open by a character of unknown tone."""
        return "tones" not in self.undecided and not any(f.rule in TONE_RULES for f in self.faults)

    @property
    def rhyme_ok(self) -> bool:
        return self.form is not None and "rhyme" not in self.undecided \
            and not any(f.rule not in TONE_RULES for f in self.faults)

    @property
    def passed(self) -> bool:
        return self.tones_ok and self.rhyme_ok


def _nearest(lines: list[str], form: str, lex: Lexicon):
    """The standard pattern closest at 二四六, then at every position. 首句入韻 is what the first line
    does: a first line ending in 平 rhymes (or breaks the rhyme), one ending in 仄 does not."""
    n = FORMS[form][0]
    end = lex.definite(lines[0][-1])
    best = None
    for name in QUATRAIN:
        if end is not None and name.endswith("-rhyme") != (end == PING):
            continue
        expected = pattern_lines(name, form)
        wrong = [(i, j) for i, line in enumerate(lines) for j, ch in enumerate(line) if not lex.fits(ch, expected[i][j])]
        loose = [(i, j) for i, j in wrong if j in loose_columns(n)]
        if best is None or (len(loose), len(wrong)) < (best[3], best[4]):
            best = (name, expected, wrong, len(loose), len(wrong))
    return best


def _line_faults(i: int, lines: list[str], lex: Lexicon, n: int, faults: list, notes: list):
    """Within line i: 二四六, the line end of an unrhymed line, 孤平, 三平尾 (with their licences)."""
    line = lines[i]
    t = [lex.definite(ch) for ch in line]
    if i % 2 == 1 and PING in lex.tone(line[-1]):
        t[-1] = PING  # a rhyme: the rhyme settles a 多音字's reading
    for a, b in zip(loose_columns(n), loose_columns(n)[1:]):
        if t[a] is None or t[a] != t[b]:
            continue
        if b == n - 2 and t[b] == ZE and t[-1] == ZE and i % 2 == 0 and i + 1 < len(lines) \
                and lex.fits(lines[i + 1][n - 3], PING):
            notes.append(f"拗救: line {i + 2}'s {lines[i + 1][n - 3]} (平) rescues line {i + 1}'s {line[b]} (仄)")
        elif b == n - 2 and t[b] == PING and t[-1] == ZE and lex.fits(line[n - 3], ZE) and lex.fits(line[n - 5], PING):
            notes.append(f"特拗: line {i + 1} reads {'平平仄平仄' if n == 5 else '仄仄平平仄平仄'}")
        else:
            faults.append(Fault("平仄", i + 1, b + 1, f"{line[a]} and {line[b]} are both {t[b]}"))
    if i % 2 == 0 and i > 0 and t[-1] == PING:
        faults.append(Fault("平仄", i + 1, n, f"{line[-1]} is 平: a line that does not rhyme ends in 仄"))
    p, q = guping_columns(n)
    if (i % 2 == 1 or i == 0) and t[-1] != ZE and t[n - 2] == ZE and t[n - 4] != ZE:
        if t[p] == ZE and t[q] == ZE:
            faults.append(Fault("孤平", i + 1, n - 3, f"{line} has one 平 besides the rhyme"))
        elif t[p] == ZE and t[q] == PING:
            notes.append(f"孤平拗救: line {i + 1}'s {line[q]} (平) rescues its {line[p]} (仄)")
    c = sanping_column(n)
    if t[c] == t[c + 1] == t[c + 2] == PING:
        faults.append(Fault("三平尾", i + 1, c + 1, f"{line[c:]} are three 平"))


def _couplet_faults(lines: list[str], lex: Lexicon, faults: list):
    """對 inside each couplet, 粘 between couplets, both read at the 2nd character."""
    for i in range(1, len(lines)):
        a, b = lex.definite(lines[i - 1][1]), lex.definite(lines[i][1])
        if a is None or b is None:
            continue
        if i % 2 == 1 and a == b:
            faults.append(Fault("失對", i + 1, 2, f"{lines[i - 1][1]} and {lines[i][1]} are both {a}"))
        elif i % 2 == 0 and a != b:
            faults.append(Fault("失粘", i + 1, 2, f"{lines[i][1]} is {b} but line {i}'s {lines[i - 1][1]} is {a}"))


def _rhyme_faults(lines: list[str], lex: Lexicon, faults: list, notes: list) -> str:
    """The even lines rhyme in one 平 group, the first line too when it ends in 平 (a neighbouring
    group there is 孤雁出群, a note); no rhyme character twice. Returns the group's name."""
    common, seen = None, {}
    for i in range(1, len(lines), 2):
        ch = lines[i][-1]
        if ch in seen:
            faults.append(Fault("重韻", i + 1, len(lines[i]), f"{ch} already rhymes line {seen[ch] + 1}"))
        seen.setdefault(ch, i)
        if not lex.rhymes_known(ch):
            continue  # the table cannot judge this character (`_open_checks` says so)
        groups = lex.groups.get(ch, set())
        if not groups:
            faults.append(Fault("出韻", i + 1, len(lines[i]), f"line {i + 1} ends in {ch}, which is 仄"))
        elif common is not None and not common & groups:
            faults.append(Fault("出韻", i + 1, len(lines[i]),
                                f"line {i + 1} ends in {ch}, outside the rhyme group of the lines before"))
        else:
            common = set(groups) if common is None else common & groups  # a copy: &= below must not edit the table
    first = lines[0][-1]
    if lex.tone(first) == {PING} and common and lex.rhymes_known(first):
        groups = lex.groups.get(first, set())
        if first in seen:
            faults.append(Fault("重韻", 1, len(lines[0]), f"{first} rhymes line {seen[first] + 1} as well"))
        if groups & common:
            common &= groups
        elif any(neighbouring(g, c) for g in groups for c in common):
            notes.append(f"孤雁出群: line 1 rhymes in {'/'.join(sorted(groups))}, a neighbour of "
                         f"{'/'.join(sorted(common))}")
        else:
            faults.append(Fault("出韻", 1, len(lines[0]), f"line 1 ends in {first}, outside the rhyme group"))
    return ", ".join(sorted(common)) if common else "undetermined"


def check_verse(text: str, lex: Lexicon) -> Verdict:
    """Form, nearest standard pattern, and every rule the poem breaks (`Verdict.faults`)."""
    form = form_of(text)
    if form is None:
        return Verdict(form=None, rhyme_note="not 4 or 8 lines of 5 or 7 characters")
    n, _ = FORMS[form]
    lines = split_lines(text)
    name, expected, wrong, n_loose, n_strict = _nearest(lines, form, lex)
    faults, notes = [], []
    for i in range(len(lines)):
        _line_faults(i, lines, lex, n, faults, notes)
    _couplet_faults(lines, lex, faults)
    rhyme = _rhyme_faults(lines, lex, faults, notes)
    faults.sort(key=lambda f: (f.line, f.char))
    crossed = {(f.line - 1, f.char - 1) for f in faults if f.rule in TONE_RULES}
    marks = ["".join("×" if (i, j) in crossed else ("?" if not lex.tone(ch) else (expected[i][j] if lex.fits(ch, expected[i][j])
                     else next(iter(lex.tone(ch))))) for j, ch in enumerate(line)) for i, line in enumerate(lines)]
    tone_places = [(i, j) for i in range(len(lines)) for j in sorted(read_columns(n))]
    rhyme_places = [(i, n - 1) for i in range(len(lines)) if i % 2 == 1 or lex.fits(lines[0][-1], PING) and i == 0]
    unjudged, undecided = _open_checks(lines, tone_places, rhyme_places, lex)
    return Verdict(form=form, pattern=name, label=pattern_label(name, form), expected=expected, marks=marks,
                   strict_mismatches=n_strict, loose_mismatches=n_loose, faults=faults, notes=notes, rhyme_note=rhyme,
                   unjudged=unjudged, undecided=undecided)


def check_tune(text: str, lex: Lexicon, tune: str) -> Verdict:
    """A ci against its tune's template. 平仄 where the template decides the tone of the 2nd, 4th or
    6th character of a clause and the character's only reading is the other; at the 1st, 3rd, 5th,
    7th character a departure is a note (一三五不論, what `--tones loose` leaves free). 出韻
    where a rhyme is of another tone class or shares no 部 of 詞林正韻 with the segment's first
    rhyme, 重韻 for a rhyme repeated in a segment. A segment of a 仄 class (上去 or 入) takes the
    other 仄 class too when all its rhymes keep to it: 玉樓春 and 菩薩蠻 are written in both."""
    t = load_tunes()[tune]
    parts = clauses(text)
    want = [n for n, _ in parse_layout(t["layout"])]
    form = f"{CI}{tune}"
    if [len(c) for c, _ in parts] != want or "".join(c + p for c, p in parts) != text:
        return Verdict(form=None, rhyme_note=f"not the layout of {tune} ({t['layout']})")
    bare = "".join(c for c, _ in parts)
    where = [(i, j) for i, (c, _) in enumerate(parts) for j in range(len(c))]  # char index -> (clause, column)
    segment = {k: s for k, s in t["rhymes"]}
    faults, notes = [], []
    for k, ch in enumerate(bare):
        tone, (line, col) = t["tones"][k], where[k]
        if tone != "〇" and k not in segment and lex.definite(ch) not in (None, tone):
            if col % 2 == 1:
                faults.append(Fault("平仄", line + 1, col + 1, f"{ch} is {lex.definite(ch)}; the tune has {tone}"))
            else:
                notes.append(f"一三五不論: clause {line + 1}'s {ch} is {lex.definite(ch)} where the tune has {tone}")
    for s, cls in enumerate(t["segments"]):
        ks = sorted(k for k, x in segment.items() if x == s)
        common, seen, classes = None, {}, rhyme_classes(cls)
        for k in ks:
            ch, (line, col) = bare[k], where[k]
            if ch in seen:
                faults.append(Fault("重韻", line + 1, col + 1, f"{ch} already rhymes clause {seen[ch] + 1}"))
            seen.setdefault(ch, line)
            if not lex.rhymes_known(ch):
                continue
            bus = {(b, c) for b, c in lex.ci_rhymes(ch) if c in classes}  # (部, class)
            if not bus or (common is not None and not common & bus):
                faults.append(Fault("出韻", line + 1, col + 1,
                                    f"{ch} does not rhyme in the {'/'.join(classes)} rhyme of the others"))
            else:
                common = bus if common is None else common & bus
    faults.sort(key=lambda f: (f.line, f.char))
    crossed = {(f.line - 1, f.char - 1) for f in faults if f.rule in TONE_RULES}
    def mark(i, j, ch):  # the text's tone, as for shi: the tune's where the character can take it
        tone = t["tones"][sum(want[:i]) + j]
        if (i, j) in crossed or not lex.tone(ch):
            return "×" if (i, j) in crossed else "?"
        return tone if tone != "〇" and lex.fits(ch, tone) else (lex.definite(ch) or "±")
    marks = ["".join(mark(i, j, ch) for j, ch in enumerate(c)) for i, (c, _) in enumerate(parts)]
    tone_places = [where[k] for k in range(len(bare)) if t["tones"][k] != "〇" and k not in segment and where[k][1] % 2]
    unjudged, undecided = _open_checks([c for c, _ in parts], tone_places, [where[k] for k in segment], lex)
    return Verdict(form=form, pattern=tune, label=t["layout"], expected=None, marks=marks, faults=faults, notes=notes,
                   rhyme_note=" / ".join(t["segments"]), unjudged=unjudged, undecided=undecided)


def _open_checks(lines: list[str], tone_places: list, rhyme_places: list, lex: Lexicon) -> tuple[list, tuple]:
    """The characters a rule reads (at tone_places, rhyme_places: (line, column)) whose tone or rhyme
    group the lexicon lacks, and which checks they leave undecided. A character at a free place
    (the 1st of a seven-character line, a ci's 〇 or odd column) leaves nothing open."""
    no_tone = [lines[i][j] for i, j in tone_places if not lex.tone(lines[i][j])]
    no_rhyme = [lines[i][j] for i, j in rhyme_places if not lex.rhymes_known(lines[i][j])]
    chars = no_tone + no_rhyme
    return sorted(set(chars), key=chars.index), ("tones",) * bool(no_tone) + ("rhyme",) * bool(no_rhyme)


def rhyme_classes(cls: str) -> tuple:
    """The 詞林正韻 tone classes a tune's rhyme segment of class `cls` may use: 平 alone, or
    either 仄 class (上去, 入)."""
    return (cls,) if cls == PING else ("上去", "入")


def summarize(verdicts: list[Verdict]) -> dict:
    """Pass rates over the poems judged in a regulated form (poems, regulated_form, tones_pass,
    rhyme_pass, both_pass; None when there are none), the ci apart (ci, ci_pass), how many of
    either a character of unknown tone or rhyme left undecided (not passes), and how many poems
    break each rule."""
    shi = [v for v in verdicts if v.form in FORMS]
    ci = [v for v in verdicts if v.form and v.form.startswith(CI)]
    rate = (lambda n: n / len(shi)) if shi else (lambda n: None)
    out = {"poems": len(verdicts), "regulated_form": len(shi),
           "tones_pass": rate(sum(v.tones_ok for v in shi)), "rhyme_pass": rate(sum(v.rhyme_ok for v in shi)),
           "both_pass": rate(sum(v.passed for v in shi)), "ci": len(ci),
           "ci_pass": sum(v.passed for v in ci) / len(ci) if ci else None,
           "undecided": sum(bool(v.undecided) for v in shi + ci)}
    for rule in RULES:
        out[f"poems_with_{rule}"] = sum(any(f.rule == rule for f in v.faults) for v in shi + ci)
    return out


def verdict_row(text: str, v: Verdict) -> dict:
    """A verdict as a JSON-ready dict (the `--json` rows of score)."""
    return {"text": text, "form": v.form, "pattern": v.label, "tones": v.marks, "strict_mismatches": v.strict_mismatches,
            "loose_mismatches": v.loose_mismatches, "tones_ok": v.tones_ok, "rhyme_ok": v.rhyme_ok,
            "rhyme": v.rhyme_note, "faults": [{"rule": f.rule, "line": f.line, "char": f.char, "detail": f.detail}
                                              for f in v.faults], "notes": v.notes, "unjudged": v.unjudged,
            "undecided": list(v.undecided),
            "runner_up": v.runner_up and {"form": v.runner_up, "faults": v.runner_up_faults}}
