"""The writing system: the punctuation a poem may hold, the CJK ranges, the marks of a lost
character, lines and clauses, and the tables shipped inside the package.

Everything in `poetics/` reads these facts from here; this module imports only symlstm's errors.
It also reads a poem as people type it (`normalize_poem`), simplified characters included.
"""
import functools
import re
from importlib import resources

from symlstm.errors import UserError

PUNCT = "，。！？；：、"  # every punctuation mark a poem may hold; never part of a line
LOST_MARKS = "□○●■"  # the corpus marks a lost character with one of these
CJK = r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"

_SPLIT = re.compile(f"[{PUNCT}]")
_CLAUSE = re.compile(f"([^{PUNCT}]+)([{PUNCT}])")


def split_lines(text: str) -> list[str]:
    """The lines of a poem, without their punctuation."""
    return [line for line in _SPLIT.split(text) if line]


def clauses(text: str) -> list[tuple[str, str]]:
    """(clause, its punctuation mark) pairs of a text that ends in punctuation."""
    return _CLAUSE.findall(text)


def table(name: str):
    """A data file shipped with the package (`symlstm/poetics/tables/`): pingshui.json, supplement.json,
    ci_tunes.json, corpus_chars.txt.
    A Traversable, so it reads the same from a checkout, an installed wheel or a zip."""
    return resources.files("symlstm.poetics").joinpath("tables", name)


# --- poems as people type them -----------------------------------------------------------------
MAX_CHARS = 400  # characters of one poem the commands and the page judge (賀新郎, the longest tune: 142 with marks)
ASCII_PUNCT = str.maketrans({",": "，", ".": "。", "?": "？", "!": "！", ";": "；", ":": "：", "\u3000": " "})
TITLE = re.compile(r"^\s*《[^》]*》\s*")


class PoemError(UserError, ValueError):
    """A text that cannot be read as a poem, with what is wrong in one line."""


def s2t(text: str) -> str:
    """OpenCC's s2t, whose phrase table picks among one-to-many characters, with 菸 read as 煙
    (tobacco came to China in the 16th century): how `make data` converts the Song ci."""
    return _s2t()(text).replace("菸", "煙")


def to_traditional(text: str) -> str:
    """A text someone typed, converted by `s2t` only where it is written in simplified characters:
    where it holds a character that s2t changes and that neither the shipped corpus nor the 平水韻
    table holds (尽, 层, 楼: simplified use alone). A text without one is traditional and stays as
    typed: the corpus writes 却 651 times (卻 30), 烟 38 times beside 煙, and s2t would rewrite them.
    In a converted text a character the 平水韻 table holds stays as typed too: s2t would turn the
    traditional 征 of 孤蓬萬里征 into 徵, while the 黄 of a simplified 黄河 becomes 黃."""
    converted = s2t(text)
    kept = _table_characters()
    if len(converted) != len(text):
        return converted
    if not any(a != b and a not in kept and a not in _corpus_characters() for a, b in zip(text, converted)):
        return text  # nothing in it exists in simplified use alone
    return "".join(a if a in kept else b for a, b in zip(text, converted))


@functools.lru_cache(maxsize=1)
def _s2t():
    import opencc

    return opencc.OpenCC("s2t").convert


@functools.lru_cache(maxsize=1)
def _table_characters() -> frozenset:
    """Every character of the shipped 平水韻 table (traditional characters)."""
    return frozenset(re.sub(r"[^\u3400-\u9fff\uf900-\ufaff]", "", table("pingshui.json").read_text(encoding="utf-8")))


@functools.lru_cache(maxsize=1)
def _corpus_characters() -> frozenset:
    """Every character of the shipped corpus, data/tang_quatrains.txt (tables/corpus_chars.txt)."""
    return frozenset(table("corpus_chars.txt").read_text(encoding="utf-8").strip())


def _units(text: str) -> list[list[str]]:
    """[characters, mark] per line or clause: split at marks, whitespace and newlines; '' where
    nothing closed it."""
    out = []
    for chunk in text.split():
        for chars, mark in re.findall(f"([^{PUNCT}]*)([{PUNCT}]?)", chunk):
            if chars:
                out.append([chars, mark])
            elif mark and out and not out[-1][1]:
                out[-1][1] = mark
    return out


def _regulated(units: list) -> bool:
    return len(units) in (4, 8) and {len(c) for c, _ in units} in ({5}, {7})


def normalize_poem(text: str, convert: bool = True) -> tuple[str, bool]:
    """A poem as people type it -> (the poem as the checker reads it, whether simplified characters
    were converted). Accepted: whitespace or newlines between lines, ASCII punctuation, ？ ！ ； ：
    closing a line, no final mark, no marks at all (20, 28, 40 or 56 characters in a row), a title in
    《》 or on a first line of its own. Lines of one
    regulated length (4 or 8 lines of 5 or 7) are closed ，。 alternately; other texts keep their
    marks, and a line nothing closed gets 。. Raises PoemError naming the first character that is
    not Chinese."""
    if len(text) > MAX_CHARS:
        raise PoemError(f"{len(text)} characters: a poem here has at most {MAX_CHARS}")
    traditional = to_traditional(text) if convert else text
    converted = traditional != text
    text = TITLE.sub("", traditional.translate(ASCII_PUNCT)).strip()
    rows = [r.strip() for r in text.splitlines() if r.strip()]
    if len(rows) > 1 and not re.search(f"[{PUNCT}]", rows[0]) and len(rows[0]) <= 12:
        if _regulated(_units("\n".join(rows[1:]))) and not _regulated(_units(text)):
            text = "\n".join(rows[1:])  # the first row was its title
    units = _units(text)
    if not units:
        raise PoemError("no poem: give its characters (e.g. 白日依山盡，黃河入海流。…)")
    if len(units) == 1 and not units[0][1] and len(units[0][0]) in (20, 28, 40, 56):  # one run, no marks
        run, n = units[0][0], 7 if len(units[0][0]) % 7 == 0 else 5
        units = [[run[k:k + n], ""] for k in range(0, len(run), n)]
    for k, (chars, _) in enumerate(units):
        bad = next((ch for ch in chars if not re.fullmatch(CJK, ch)), None)
        if bad is not None:
            raise PoemError(f"line {k + 1} ({chars}): {bad!r} is not a Chinese character")
    marks = ["，。"[k % 2] for k in range(len(units))] if _regulated(units) else [m or "。" for _, m in units]
    return "".join(c + m for (c, _), m in zip(units, marks)), converted
