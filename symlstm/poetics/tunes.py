"""Ci tunes (詞牌): a template per tune, derived from the corpus itself and shipped as
symlstm/poetics/tables/ci_tunes.json; the form `ci:浣溪沙` reads it.

A template is the tune's most common layout (clause lengths and punctuation), the tone of every
position where the poems of that layout agree (the lexicon's single-tone readings; positions without
a clear majority stay free, 〇), and its rhymes: the clause ends that rhyme with one another in most
poems, grouped into segments (one segment, or several where the tune changes rhyme, 換韻), each with
its tone class of 詞林正韻 (平, 上去 or 入; `lexicon.CILIN`).
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


def derive(entries: list[dict], lex: Lexicon, count: int = 30, agree: float = 0.8, rhyme: float = 0.5) -> dict:
    """Templates of the `count` commonest tunes among chinese-poetry ci entries (rhythmic, paragraphs)."""
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
    return out


def dumps(templates: dict) -> str:
    """The templates as the shipped file has them: one tune per line."""
    rows = [f"{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}" for k, v in templates.items()]
    return "{\n" + ",\n".join(rows) + "\n}\n"


@functools.lru_cache(maxsize=1)
def load() -> dict:
    """The shipped templates: tune name -> template (see `derive`)."""
    return json.loads(table("ci_tunes.json").read_text(encoding="utf-8"))


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
