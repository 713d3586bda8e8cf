"""Which form a text is, when nobody says: the one verdict every command and the page give.

A text is checked as every form whose layout it has (the regulated form of its line lengths, and
the shipped ci tunes of the same clause lengths: a 五律 and 生查子, a 七律 and 玉樓春 share theirs),
and the form it fits best wins (see `judge`). Checking one named form is `verse.py`'s.
"""
from symlstm.errors import UserError
from symlstm.poetics.forms import CI, FORM_NAMES, FORMS, LINE_ENDS, canonical, form_of, is_form, unknown_form
from symlstm.poetics.lexicon import PING, Lexicon
from symlstm.poetics.script import clauses, split_lines
from symlstm.poetics.tunes import load as load_tunes
from symlstm.poetics.tunes import parse_layout, tunes_of
from symlstm.poetics.verse import Verdict, check_tune, check_verse, rhyme_classes


class FormError(UserError, ValueError):
    """A form name that is neither a regulated form nor ci:TUNE of a shipped tune."""


def check_form(text: str, lex: Lexicon, form: str) -> Verdict:
    """The text judged as `form` (wujue, qijue, wulv, qilv or ci:TUNE), whatever else it could be;
    a Verdict without a form, saying why, when the text does not have that form's layout. A tune may
    be named by any of its names (`forms.canonical`)."""
    if not is_form(form):
        raise FormError(unknown_form("--form", form))
    form = canonical(form)
    if form.startswith(CI):
        return check_tune(text, lex, form[len(CI):])
    if form_of(text) != form:
        n, lines = FORMS[form]
        return Verdict(form=None, rhyme_note=f"not the layout of a {FORM_NAMES[form]} ({lines} lines of {n} "
                                             f"characters, each ending in ，or 。)")
    return check_verse(text, lex)


def _rhyme_tone_misfit(text: str, form: str, lex: Lexicon) -> tuple[int, int]:
    """(misfits, rhyme places the table knows): places whose character cannot rhyme in the form's
    tone, 平 for the regulated forms (their even lines), the segment's classes for a tune. What
    tells a 律詩 from the tune of the same layout: 律詩 rhyme on 平, 生查子 and 玉樓春 on 仄."""
    if not form.startswith(CI):
        ends = [lex.tone(line[-1]) for line in split_lines(text)[1::2] if lex.tone(line[-1])]
        return sum(PING not in t for t in ends), len(ends)
    t = load_tunes()[form[len(CI):]]
    bare = "".join(c for c, _ in clauses(text))
    places = [(lex.ci_rhymes(bare[k]), rhyme_classes(t["segments"][s])) for k, s in t["rhymes"]
              if lex.ci_rhymes(bare[k])]
    return sum(all(c not in classes for _, c in readings) for readings, classes in places), len(places)


def _punctuation_misfit(text: str, form: str) -> int:
    """Clause marks of the text that differ from the form's (，and 。 alternating for the regulated
    forms, the tune's marks for a ci)."""
    marks = [p for _, p in clauses(text)]
    if form.startswith(CI):
        want = [p for _, p in parse_layout(load_tunes()[form[len(CI):]]["layout"])]
    else:
        want = [LINE_ENDS[i % 2] for i in range(len(marks))]
    return sum(a != b for a, b in zip(marks, want))


def judge(text: str, lex: Lexicon, form: str = "") -> Verdict:
    """The one verdict every command and the page give: `form` when it is named (see check_form),
    else the form the text fits best among those whose layout it has: the regulated form and the
    shipped tunes of the same clause lengths. A form whose rhyme tone half or more of the text's
    rhymes contradict comes last (a 平-rhymed 古詩 of eight five-character lines is not a 生查子,
    whatever its faults as a 五律); then fewest faults, fewest rhyme places of the wrong tone,
    fewest marks of another punctuation. The runner-up is named when it is within two faults. No
    layout of any form: a Verdict without a form, saying the text's line lengths."""
    if form:
        return check_form(text, lex, form)
    candidates = ([form_of(text)] if form_of(text) else []) + [CI + t for t in tunes_of(text)]
    if not candidates:
        lengths = [len(c) for c, _ in clauses(text)]
        return Verdict(form=None, rhyme_note="not a regulated form (4 or 8 lines of 5 or 7 characters) nor the layout "
                                             f"of a shipped ci tune: {len(lengths)} line(s) of "
                                             f"{', '.join(map(str, lengths)) or 'no'} characters")
    judged = []
    for k, f in enumerate(candidates):
        v = check_form(text, lex, f)
        misfit, places = _rhyme_tone_misfit(text, f, lex)
        contradicted = places > 0 and 2 * misfit >= places
        judged.append((contradicted, len(v.faults), misfit, _punctuation_misfit(text, f), k, v))
    judged.sort(key=lambda row: row[:5])
    best = judged[0][-1]
    if len(judged) > 1 and judged[1][1] <= judged[0][1] + 2:
        best.runner_up, best.runner_up_faults = judged[1][-1].form, judged[1][1]
    return best


def form_token_of(text: str, lex: Lexicon) -> str:
    """The form token of a text nobody labelled: its judged form's (`judge`), <gushi> for none. (A
    corpus tags its poems by where they were recorded instead: `forms.form_token`.)"""
    form = judge(text, lex).form
    return f"<{form}>" if form else "<gushi>"
