"""The shapes of poems: the regulated forms, their line lengths, the form tokens.

One home for these facts; the corpus filters, the verse checker, the decoding constraints and
`make data` all read them from here. A ci form (`ci:浣溪沙`) takes its layout from the tune's
template (`tunes.py`); punctuation and lines are the writing system's (`script.py`). Nothing here
knows tones or rhyme (`verse.py`).
"""
import re

from symlstm.poetics.script import CJK
from symlstm.poetics.tunes import load as load_tunes
from symlstm.poetics.tunes import close_names, of_label, parse_layout, resolve, tune_of

FORMS = {"wujue": (5, 4), "qijue": (7, 4), "wulv": (5, 8), "qilv": (7, 8)}  # form -> (characters per line, lines)
FORM_NAMES = {"wujue": "五絕", "qijue": "七絕", "wulv": "五律", "qilv": "七律"}
FORM_GROUPS = {"jueju": ("wujue", "qijue"), "lvshi": ("wulv", "qilv")}  # data.form may name a group
LINE_ENDS = "，。"  # a regulated poem's lines end in ，and 。 alternately


def form_of(text: str) -> str | None:
    """'wujue' / 'qijue' / 'wulv' / 'qilv' when the text is 4 or 8 lines of 5 or 7 CJK characters,
    each ending in ，or 。; else None."""
    for form, (n, lines) in FORMS.items():
        if len(text) == lines * (n + 1) and re.fullmatch(rf"(?:{CJK}{{{n}}}[{LINE_ENDS}])+", text):
            return form
    return None


def matches_form(text: str, form: str) -> bool:
    """Whether text is of `form`: 'any', a form of FORMS, or a group of FORM_GROUPS."""
    if form == "any":
        return True
    return form_of(text) in FORM_GROUPS.get(form, (form,))


CI = "ci:"  # a ci form names its tune: ci:浣溪沙 (the templates are tunes.py's)


def canonical(form: str) -> str:
    """A form as the tables name it: a tune by any of its names (`tunes.resolve`: ci:憶江南, ci:夢江南)
    -> ci:望江南・憶江南; anything else as given."""
    if form.startswith(CI):
        return CI + (resolve(form[len(CI):]) or form[len(CI):])
    return form


def is_form(form: str) -> bool:
    """A regulated form of FORMS, or ci:TUNE for a tune with a shipped template, by any of its names."""
    if form.startswith(CI):
        return resolve(form[len(CI):]) is not None
    return form in FORMS


def unknown_form(option: str, form: str) -> str:
    """The refusal of a form name: the names closest to it, every form and every tune, and where the
    tunes' other names are listed."""
    close = close_names(form[len(CI):]) if form.startswith(CI) else []
    hint = f"did you mean {' or '.join(CI + n for n in close)}? " if close else ""
    return (f"{option} {form!r}: {hint}choose one of {', '.join(FORMS)} or ci:TUNE with a shipped tune by any of "
            f"its names: {', '.join(load_tunes())} (`symlstm tunes` lists every name of each)")


def layout(form: str) -> list[tuple[int, str]]:
    """(characters, punctuation mark) of each line or clause of a form, in order."""
    if form.startswith(CI):
        return parse_layout(load_tunes()[form[len(CI):]]["layout"])
    n, lines = FORMS[form]
    return [(n, LINE_ENDS[i % 2]) for i in range(lines)]


CHAR = "·"  # a character's place in a plan


def plan(form: str) -> str:
    """A form's places, one per text position: CHAR for a character, else the punctuation mark."""
    return "".join(CHAR * n + mark for n, mark in layout(form))


def line_starts(form: str) -> list[int]:
    """The text position of each line's (or clause's) first character."""
    starts, pos = [], 0
    for n, _ in layout(form):
        starts.append(pos)
        pos += n + 1
    return starts


def line_length(form: str) -> int:
    """The longest line or clause of a form (what a keyword must fit in)."""
    return max(n for n, _ in layout(form))


def poem_length(form: str) -> int:
    """Characters of a poem of `form`, punctuation included."""
    return sum(n + 1 for n, _ in layout(form))


def form_tokens() -> list[str]:
    """The form control tokens, in vocabulary order: the regulated forms, <gushi> (anything
    irregular), <ci> (a ci of a tune without a template), then <ci:TUNE> for each shipped tune."""
    return [f"<{f}>" for f in FORMS] + ["<gushi>", "<ci>"] + [f"<{CI}{t}>" for t in load_tunes()]


def form_group(token: str) -> str:
    """The form a start token stands for in per-form reports: `<wujue>` -> wujue, every ci tune
    (`<ci:浣溪沙>`, `<ci>`) -> ci, <bos> (a model without form tokens) -> all."""
    name = token.strip("<>")
    return "all" if name == "bos" else "ci" if name == "ci" or name.startswith(CI) else name


def form_token(text: str = "", tune: str = "", form: str = "") -> str:
    """The token naming a poem's form: `form` when given (a sampling request), else a ci's tune
    (`tune`, the corpus' label, by any of the tune's names), else what the text is (a regulated form,
    a ci whose layout is one shipped tune's, or <gushi>)."""
    if form:
        return f"<{form}>"
    tune = tune or ("" if form_of(text) else tune_of(text) or "")
    if tune:
        return f"<{CI}{of_label(tune)}>" if of_label(tune) else "<ci>"
    return f"<{form_of(text)}>" if form_of(text) else "<gushi>"