"""The writing system: the punctuation a poem may hold, the CJK ranges, the marks of a lost
character, lines and clauses, and the tables shipped inside the package.

Everything in `poetics/` reads these facts from here; this module imports nothing of symlstm.
"""
import re
from importlib import resources

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
    """A data file shipped with the package (`symlstm/poetics/tables/`): pingshui.json, ci_tunes.json.
    A Traversable, so it reads the same from a checkout, an installed wheel or a zip."""
    return resources.files("symlstm.poetics").joinpath("tables", name)
