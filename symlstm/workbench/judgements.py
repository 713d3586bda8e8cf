"""The judge (`poetics/judge.judge`, what `symlstm score` and the page use) checked at the scale of the
corpus (`symlstm judge-corpus`): form identification over every Tang and Song shi of a regulated
layout and every Song ci of a shipped tune, agreement with the independent pingshui-rhyme checker
on meter and rhyme, each disagreement sorted into a named class with an example, and the speed.

Reads `make data`'s files (tang.txt, song.txt, songci.json); returns dicts. The long functions take
`tick(n, stage)` to report progress (n poems judged).
"""
import json
import time
from collections import Counter
from pathlib import Path

from symlstm.errors import UserError
from symlstm.poetics.forms import CI, form_of
from symlstm.poetics.judge import check_form, judge
from symlstm.poetics.lexicon import PING, ZE, Lexicon
from symlstm.poetics.script import clauses, split_lines
from symlstm.poetics.tunes import load as load_tunes
from symlstm.poetics.tunes import of_label, parse_layout
from symlstm.workbench.measure import _quiet, independent_checker

LICENCES = ("拗救", "特拗", "孤平拗救")


def _read(full: Path) -> tuple[list[str], list[dict]]:
    files = [full / "tang.txt", full / "song.txt", full / "songci.json"]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UserError(f"{missing[0]}: file not found; `make data` writes it")
    shi = [line for f in files[:2] for line in f.read_text(encoding="utf-8").splitlines() if line]
    ci = json.loads(files[2].read_text(encoding="utf-8"))
    return shi, ci


def rhyme_tone(text: str, lex: Lexicon) -> str:
    """平 when every even line can end in 平 (a 律詩 or 絕句 proper), 仄 when every one is 仄 only,
    else mixed (a line end the table lacks, or 平 and 仄 both)."""
    ends = [lex.tone(line[-1]) for line in split_lines(text)[1::2]]
    if ends and all(PING in t for t in ends):
        return PING
    if ends and all(t == {ZE} for t in ends):
        return ZE
    return "mixed"


def identify_shi(poems: list[str], lex: Lexicon, tick=_quiet) -> dict:
    """Per rhyme tone: how many poems of a regulated layout were judged as that regulated form, and
    what the others were judged as."""
    out = {}
    for text in poems:
        layout, tone = form_of(text), rhyme_tone(text, lex)
        row = out.setdefault(tone, {"poems": 0, "as_layout": 0, "judged": Counter()})
        judged = judge(text, lex).form
        row["poems"] += 1
        row["as_layout"] += judged == layout
        if judged != layout:
            row["judged"][f"{layout} -> {judged}"] += 1
        tick(1, "judge-corpus: identifying shi")
    return out


def identify_ci(entries: list[dict], lex: Lexicon, tick=_quiet) -> dict:
    """The ci of the shipped tunes, labelled by any of their names (`tunes.resolve`: 酹江月・念奴嬌 is a
    念奴嬌): how many have their tune's shipped layout (clause lengths), and of those how many were
    judged as that tune, those labelled by another name apart; the tunes whose ci most often have
    another layout."""
    tunes = load_tunes()
    shipped = other = hits = by_alias = alias_hits = 0
    other_by_tune, judged = Counter(), Counter()
    for e in entries:
        tick(1, "judge-corpus: identifying ci")
        label = e.get("rhythmic") or ""
        tune = of_label(label)
        if tune is None:
            continue
        text = "".join(e["paragraphs"]).replace(" ", "")
        shipped += 1
        parts = clauses(text)
        if [len(c) for c, _ in parts] != [n for n, _ in parse_layout(tunes[tune]["layout"])] or \
                "".join(c + m for c, m in parts) != text:  # another layout, or stray text (an editor's note)
            other += 1
            other_by_tune[tune] += 1
            continue
        form = judge(text, lex).form
        hits += form == CI + tune
        if label != tune:
            by_alias += 1
            alias_hits += form == CI + tune
        if form != CI + tune:
            judged[f"{tune} -> {form}"] += 1
    return {"ci_of_shipped_tunes": shipped, "other_layout": other, "other_layout_by_tune": other_by_tune.most_common(6),
            "in_layout": shipped - other, "as_tune": hits, "by_other_name": by_alias, "by_other_name_as_tune": alias_hits,
            "confusions": judged.most_common()}


def _polyphonic(text: str, lex: Lexicon) -> bool:
    """A 多音字 where the rules look: the 2nd, 4th, 6th character of a line or its last."""
    for line in split_lines(text):
        n = len(line)
        if any(len(lex.tone(line[j])) == 2 for j in (1, 3, 5, n - 1) if j < n):
            return True
    return False


def _tone_class(v, ours: bool, text: str, lex: Lexicon) -> str:
    rules = {f.rule for f in v.faults if f.rule not in ("出韻", "重韻")}
    licences = [n.split(":")[0] for n in v.notes if n.split(":")[0] in LICENCES]
    if ours:  # we pass, pingshui-rhyme fails
        if licences:
            return f"a licence we accept ({'/'.join(sorted(set(licences)))})"
        if _polyphonic(text, lex):
            return "多音字 at a place the rules look at, read the way that fits"
        return "other (the checker's own gaps or stricter reading)"
    if not rules and "tones" in v.undecided:
        return "undecided: a character neither the table nor its supplement knows, where a rule reads it"
    if rules & {"孤平", "三平尾"} and not rules - {"孤平", "三平尾"}:
        return "孤平 or 三平尾 only (rules the checker does not apply)"
    if rules & {"失粘", "失對"} and not rules - {"失粘", "失對"}:
        return "失粘 or 失對 only"
    if _polyphonic(text, lex):
        return "多音字 at a place the rules look at, read as the checker reads it"
    return "other"


def _rhyme_class(v, ours: bool, text: str, lex: Lexicon) -> str:
    rules = {f.rule for f in v.faults if f.rule in ("出韻", "重韻")}
    if ours:
        if any(n.startswith("孤雁出群") for n in v.notes):
            return "孤雁出群 (first line in a neighbouring group), which we note and the checker fails"
        ends = [line[-1] for line in split_lines(text)]
        if any(len(lex.tone(ch)) == 2 or len(lex.groups.get(ch, ())) > 1 for ch in ends):
            return "a rhyme character of two readings or two groups"
        return "other (the checker's own gaps)"
    if not rules and "rhyme" in v.undecided:
        return "undecided: a rhyme whose group neither the table nor its supplement knows"
    if rules == {"重韻"}:
        return "重韻 only (a rule the checker does not apply)"
    if any("outside the rhyme group" in f.detail and f.line == 1 for f in v.faults):
        return "first line outside the group and not a neighbour"
    return "other"


def agreement(poems: list[str], lex: Lexicon, limit: int = 0, tick=_quiet) -> dict:
    """Our meter and rhyme verdicts against pingshui-rhyme's on regulated shi rhymed on 平, as
    confusion tables (ours pass/fail × theirs pass/fail), the disagreements by class with a count
    and an example each."""
    checker = independent_checker()
    poems = [p for p in poems if rhyme_tone(p, lex) == PING][:limit or None]
    tables = {k: Counter() for k in ("meter", "rhyme")}
    classes = {k: Counter() for k in ("meter", "rhyme")}
    examples = {}
    for text in poems:
        tick(1, "judge-corpus: against pingshui-rhyme")
        v = check_form(text, lex, form_of(text))
        theirs = {"meter": bool(checker.check_poem_pingze_meter(text)[0]), "rhyme": bool(checker.check_poem_rhyming(text)[0])}
        ours = {"meter": v.tones_ok, "rhyme": v.rhyme_ok}
        for k in tables:
            tables[k][(ours[k], theirs[k])] += 1
            if ours[k] != theirs[k]:
                name = (_tone_class if k == "meter" else _rhyme_class)(v, ours[k], text, lex)
                key = f"{k}: {'we pass, it fails' if ours[k] else 'we fail, it passes'}: {name}"
                classes[k][key] += 1
                rhyme = k == "rhyme"
                why = [str(f) for f in v.faults if (f.rule in ("出韻", "重韻")) == rhyme][:2] + \
                      [n for n in v.notes if n.startswith("孤雁出群") == rhyme][:1]
                examples.setdefault(key, (text, why))
    return {"poems": len(poems),
            "tables": {k: {f"ours {'pass' if o else 'fail'}, theirs {'pass' if t else 'fail'}": n
                           for (o, t), n in sorted(table.items(), reverse=True)} for k, table in tables.items()},
            "classes": {k: [(key, n, examples[key]) for key, n in c.most_common()] for k, c in classes.items()}}


def judge_report(full: Path, limit: int = 0, tick=_quiet, done=lambda part: None) -> dict:
    """The whole report over `make data`'s corpus (`limit`: the first N shi only, for a quick look);
    `done(part)` gets each part ({key: value}) as soon as it is computed."""
    lex = Lexicon.load()
    shi, ci = _read(Path(full))
    regulated = [p for p in shi if form_of(p)][:limit or None]
    start = time.perf_counter()
    report = {"shi": len(shi), "regulated_layout": len(regulated), "identification": identify_shi(regulated, lex, tick)}
    report["judge_poems_per_second"] = len(regulated) / (time.perf_counter() - start)
    done(dict(report))
    for key, part in (("ci", lambda: identify_ci(ci, lex, tick)), ("agreement", lambda: agreement(regulated, lex, tick=tick))):
        report[key] = part()
        done({key: report[key]})
    return report


def format_report(r: dict) -> str:
    """The report, or any of its parts (`judge_report`'s `done`), as lines of text."""
    out = [f"shi: {r['shi']}, of which {r['regulated_layout']} have a regulated layout "
           f"(4 or 8 lines of 5 or 7 characters); judged at {r['judge_poems_per_second']:,.0f} poems/s (rules only)"] \
        if "shi" in r else []
    names = {PING: "even lines rhyme on 平 (律詩 and 絕句 proper)", ZE: "even lines end in 仄 (古體 in a regulated layout)",
             "mixed": "even lines 平 and 仄, or a character the table lacks"}
    for tone in (PING, ZE, "mixed") if "identification" in r else ():
        row = r["identification"].get(tone)
        if row:
            out.append(f"  {names[tone]}: {row['poems']}, judged as their layout's form {row['as_layout']} "
                       f"({row['as_layout'] / row['poems']:.2%})")
            out += [f"    {k}: {n}" for k, n in row["judged"].most_common(8)]
    c = r.get("ci")
    out += [] if c is None else [
        f"ci of the {len(load_tunes())} shipped tunes: {c['ci_of_shipped_tunes']}; {c['other_layout']} "
               f"({c['other_layout'] / max(c['ci_of_shipped_tunes'], 1):.1%}) have another layout than their tune's "
        f"shipped one (most: {', '.join(f'{t} {n}' for t, n in c['other_layout_by_tune'])})",
        f"  in their tune's layout: {c['in_layout']}, judged as that tune {c['as_tune']} "
        f"({c['as_tune'] / max(c['in_layout'], 1):.2%}); of them labelled by another of the tune's names "
        f"(酹江月・念奴嬌 …) {c['by_other_name']}, judged as the tune {c['by_other_name_as_tune']} "
        f"({c['by_other_name_as_tune'] / max(c['by_other_name'], 1):.2%})",
        *(f"    {k}: {n}" for k, n in c["confusions"][:8])]
    a = r.get("agreement")
    if a is None:
        return "\n".join(out)
    out.append(f"against pingshui-rhyme, on the {a['poems']} regulated shi rhymed on 平:")
    for k in ("meter", "rhyme"):
        out.append(f"  {k}: " + "; ".join(f"{key} {n}" for key, n in a["tables"][k].items()))
        for key, n, (text, why) in a["classes"][k]:
            out.append(f"    {key}: {n}, e.g. {text} ({'; '.join(why) or 'no fault'})")
    return "\n".join(out)

