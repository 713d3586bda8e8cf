"""Ci tunes (詞牌): a template per tune, derived from the corpus itself and shipped as
symlstm/poetics/tables/ci_tunes.json; the form `ci:浣溪沙` reads it.

A template is the tune's most common layout (clause lengths and punctuation), the tone of every
position where the poems of that layout agree (the lexicon's single-tone readings; positions without
a clear majority stay free, 〇), and its rhymes: the clause ends that rhyme with one another in most
poems, grouped into segments (one segment, or several where the tune changes rhyme, 換韻), each with
its tone class of 詞林正韻 (平, 上去 or 入; `lexicon.CILIN`).

A tune's other names (`aliases`) come from the corpus' own labels: 全宋詞 writes a poem that its
poet titled by another name of a tune as `酹江月・念奴嬌` (the poet's name, then the tune's), so every
name in such a label is the tune's, where the label's poems have the tune's length. `resolve` turns
any of them into the table's name; `sample`, `score`, `check-verse` and the page all go through it.
"""
import functools
import json
import re
from collections import Counter

from symlstm.poetics.lexicon import Lexicon
from symlstm.poetics.script import PUNCT, clauses, table


def layout_of(text: str) -> str:
    """'7。7。7。…': each clause's length and its mark."""
    return "".join(f"{len(c)}{p}" for c, p in clauses(text))


def parse_layout(layout: str) -> list[tuple[int, str]]:
    return [(int(n), p) for n, p in re.findall(f"(\\d+)([{PUNCT}])", layout)]


def _rhyme_rate(poems: list[str], a: int, b: int, lex: Lexicon) -> float:
    """Share of poems whose characters at positions a and b share a 詞林正韻 部 and tone class."""
    return sum(bool(lex.ci_rhymes(p[a]) & lex.ci_rhymes(p[b])) for p in poems) / len(poems)


ALIAS_MARK = "・"  # between the names of one tune in a corpus label: 酹江月・念奴嬌


def characters(layout: str) -> int:
    return sum(n for n, _ in parse_layout(layout))


def derive_aliases(by_tune: dict, templates: dict, share: float = 0.5, slack: float = 0.05) -> dict:
    """Per template: the other names the corpus labels give the tune, sorted. A label `A・B` names
    one tune by two names; where one of its names is a template's (its key, or a name in its key), and
    at least `share` of the label's poems have the template's number of characters (within `slack` of
    it: editors' texts lose or gain a character), its other names are the tune's. A name two tunes
    claim, or a template's own key, is nobody's."""
    names = {part: key for key in templates for part in key.split(ALIAS_MARK)}
    claims = {}
    for label, texts in by_tune.items():
        parts = label.split(ALIAS_MARK)
        key = label if label in templates else next((names[p] for p in parts if p in names), None)
        if key is None:
            continue
        length = characters(templates[key]["layout"])
        if sum(abs(sum(len(c) for c, _ in clauses(t)) - length) <= slack * length for t in texts) < share * len(texts):
            continue
        for name in set(parts) - {key}:
            claims.setdefault(name, set()).add(key)
    out = {key: [] for key in templates}
    for name, keys in sorted(claims.items()):
        if len(keys) == 1 and name not in templates:
            out[next(iter(keys))].append(name)
    return out


def derive(entries: list[dict], lex: Lexicon, count: int = 30, agree: float = 0.8, rhyme: float = 0.5) -> dict:
    """Templates of the `count` commonest tunes among chinese-poetry ci entries (rhythmic, paragraphs),
    with their other names (`derive_aliases`)."""
    by_tune = {}
    for e in entries:
        if e.get("rhythmic") and e["rhythmic"] != "失調名":
            by_tune.setdefault(e["rhythmic"], []).append("".join(e["paragraphs"]).replace(" ", ""))
    out = {}
    for name, texts in sorted(by_tune.items(), key=lambda kv: -len(kv[1]))[:count]:
        shapes = Counter(tuple(len(c) for c, _ in clauses(t)) for t in texts)
        shape, n_shape = shapes.most_common(1)[0]
        same = [t for t in texts if tuple(len(c) for c, _ in clauses(t)) == shape]
        marks = [Counter(clauses(t)[k][1] for t in same).most_common(1)[0][0] for k in range(len(shape))]
        layout = "".join(f"{n}{m}" for n, m in zip(shape, marks))
        bare = ["".join(c for c, _ in clauses(t)) for t in same]  # characters only
        tones, shares = "", []
        for k in range(sum(shape)):
            votes = Counter(lex.definite(p[k]) for p in bare if lex.definite(p[k]))
            tone, n = votes.most_common(1)[0] if votes else ("〇", 0)
            share = n / max(sum(votes.values()), 1)
            tones += tone if share >= agree and n >= 10 else "〇"
            shares.append(share)
        ends = [sum(shape[:k + 1]) - 1 for k in range(len(shape))]
        segments, free = [], list(reversed(ends))
        while free:
            head = free.pop(0)
            group = [e for e in free if _rhyme_rate(bare, head, e, lex) >= rhyme]
            if group or head == ends[-1]:
                segments.append(sorted([head] + group))
                free = [e for e in free if e not in group]
        segments.sort()
        classes = []
        for seg in segments:
            votes = Counter(c for p in bare for k in seg for _, c in lex.ci_rhymes(p[k]) if len({x for _, x in lex.ci_rhymes(p[k])}) == 1)
            classes.append(votes.most_common(1)[0][0] if votes else "平")
        out[name] = {"poems": len(texts), "layout": layout, "layout_share": round(n_shape / len(texts), 3),
                     "tones": tones, "tone_agreement": round(sum(s for s, t in zip(shares, tones) if t != "〇") /
                                                         max(sum(t != "〇" for t in tones), 1), 3),
                     "free_positions": tones.count("〇"),
                     "rhymes": [[k, s] for s, seg in enumerate(segments) for k in seg], "segments": classes}
    for key, names in derive_aliases(by_tune, out).items():
        out[key]["aliases"] = names
    return out


def dumps(templates: dict) -> str:
    """The templates as the shipped file has them: one tune per line."""
    rows = [f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}" for k, v in templates.items()]
    return "{\n" + ",\n".join(rows) + "\n}\n"


@functools.lru_cache(maxsize=1)
def load() -> dict:
    """The shipped templates: tune name -> template (see `derive`)."""
    return json.loads(table("ci_tunes.json").read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=1)
def aliases() -> dict:
    """Every name of a shipped tune -> the table's name (its own included)."""
    return {**{a: key for key, t in load().items() for a in t.get("aliases", ())}, **{key: key for key in load()}}


def resolve(name: str) -> str | None:
    """The table's name of a tune given by any of its names (望江南, 憶江南, 夢江南 -> 望江南・憶江南), typed
    in traditional or simplified characters (忆江南), or None."""
    from symlstm.poetics.script import to_traditional

    name = name.strip()
    return aliases().get(name) or aliases().get(to_traditional(name))


def of_label(label: str) -> str | None:
    """The table's name of the tune a corpus label names (`酹江月・念奴嬌`: the label, or its first name)."""
    return resolve(label) or resolve(label.split(ALIAS_MARK)[0]) if label else None


def close_names(name: str) -> list[str]:
    """The names of shipped tunes (any of them) closest to a mistyped one: 浣紗溪 -> 浣溪紗, 浣沙溪 …"""
    import difflib

    from symlstm.poetics.script import to_traditional

    return difflib.get_close_matches(to_traditional(name), list(aliases()), n=3, cutoff=0.6)


def tunes_of(text: str) -> list[str]:
    """The shipped tunes whose layout (clause lengths) the text has."""
    parts = clauses(text)
    if not parts or "".join(c + p for c, p in parts) != text:
        return []
    lengths = [len(c) for c, _ in parts]
    return [name for name, t in load().items() if [n for n, _ in parse_layout(t["layout"])] == lengths]


def tune_of(text: str) -> str | None:
    """The shipped tune whose layout the text has, when exactly one has it (how the corpus tags a
    ci without its tune; `judge.judge` weighs the tunes and the regulated forms a text could be)."""
    names = tunes_of(text)
    return names[0] if len(names) == 1 else None
