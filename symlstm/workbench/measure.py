"""The poet's workbench, measured (`symlstm measure`): strict-tone samples against an independent
checker, default samples of every form and tune without 出韻, bigram repeats of greedy and beam
search against the corpus', keyword hit rates, fill-in quality, and the ci tunes' format. Tools over
a sampler; they return dicts, and take `tick(n, stage)` to report progress (n poems done).

The independent checker is the `pingshui-rhyme` package (PyPI, 0.20), whose meter and rhyme checks
are written apart from `verse.py` (it needs setuptools' `pkg_resources`, hence setuptools<81).
"""
import time
from collections import Counter

import numpy as np

from symlstm.errors import UserError
from symlstm.poetics.forms import CI, FORMS, LINE_ENDS, form_of
from symlstm.poetics.judge import judge
from symlstm.poetics.lexicon import Lexicon
from symlstm.poetics.script import clauses, split_lines
from symlstm.poetics.tunes import load as load_tunes
from symlstm.poetics.tunes import parse_layout
from symlstm.run.evaluate import surprisal
from symlstm.workbench.constraints import opposed_columns, repeated_bigrams
from symlstm.workbench.decode import DecodeError, SampleOptions, Sampler


def _quiet(n: int = 1, stage: str | None = None):
    """The progress callback of a caller who shows none."""


def independent_checker():
    """pingshui-rhyme's PoemStructureChecker, or a UserError saying how to install it."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pkg_resources' deprecation notice
            from pingshui_rhyme import PoemStructureChecker
    except ImportError as err:
        raise UserError(f"the independent checker is missing ({err}): pip install pingshui-rhyme==0.20 "
                        "'setuptools<81' (`make install` does)") from None
    return PoemStructureChecker()


def strict_samples(sampler: Sampler, num: int = 200, temperature: float = 0.8, seed: int = 0,
                   forms=tuple(FORMS), tones: str = "strict", tick=_quiet) -> list[dict]:
    """Per form: `num` samples under `tones`; the share in the form, passing pingshui-rhyme's meter
    and rhyme checks, and passing `symlstm score` (judged as the form asked for, no form named, and
    no fault); the failures' texts."""
    checker, lex = independent_checker(), Lexicon.load()
    rows = []
    for form in forms:
        start = time.perf_counter()
        poems = [p["text"] for p in sampler.sample(SampleOptions(num=num, form=form, tones=tones,
                                                                  temperature=temperature, seed=seed))]
        tick(num, f"{tones} {form}")
        seconds = time.perf_counter() - start
        meter = [checker.check_poem_pingze_meter(p)[0] for p in poems]
        rhyme = [checker.check_poem_rhyming(p)[0] for p in poems]
        ours = [(lambda v: v.form == form and v.passed)(judge(p, lex)) for p in poems]
        rows.append({"form": form, "samples": num, "seconds": seconds,
                     "format": sum(form_of(p) == form for p in poems) / num,
                     "pingshui_meter": sum(meter) / num, "pingshui_rhyme": sum(rhyme) / num,
                     "pingshui_both": sum(m and r for m, r in zip(meter, rhyme)) / num,
                     "score_pass": sum(ours) / num,
                     "failures": [p for p, m, r, o in zip(poems, meter, rhyme, ours) if not (m and r and o)]})
    return rows


def tune_samples(sampler: Sampler, num: int = 100, temperature: float = 0.8, seed: int = 0, tones: str = "strict",
                 tick=_quiet) -> list[dict]:
    """Per shipped ci tune: `num` samples of ci:TUNE under `tones`; the share in the tune's layout
    (clause lengths) and the share `symlstm score` passes (judged as that tune, no form named, and
    no fault)."""
    lex, rows = Lexicon.load(), []
    for tune, t in load_tunes().items():
        start = time.perf_counter()
        poems = [p["text"] for p in sampler.sample(SampleOptions(num=num, form=f"{CI}{tune}", tones=tones,
                                                                  temperature=temperature, seed=seed))]
        tick(num, f"{tones} ci:{tune}")
        want = [n for n, _ in parse_layout(t["layout"])]
        rows.append({"tune": tune, "samples": num, "seconds": time.perf_counter() - start,
                     "format": sum([len(c) for c, _ in clauses(p)] == want for p in poems) / num,
                     "score_pass": sum((lambda v: v.form == CI + tune and v.passed)(judge(p, lex))
                                       for p in poems) / num})
    return rows


def default_samples(sampler: Sampler, num: int = 100, temperature: float = 0.8, seed: int = 0, forms=None,
                    tick=_quiet) -> list[dict]:
    """Per regulated form and per shipped tune (or `forms`): `num` samples asking for the form alone,
    so under the rules it keeps by default (`SampleOptions.tone_choice`: loose tones and the rhyme),
    drawn 20 at a time (seeds seed, seed + 20 …); the share in the form's layout, without 出韻 by
    `symlstm score` (judged as the form asked for) and, for the shi, passing pingshui-rhyme's rhyme
    check; the failures' texts."""
    checker, lex = independent_checker(), Lexicon.load()
    rows = []
    for form in forms or [*FORMS, *(CI + t for t in load_tunes())]:
        start, poems = time.perf_counter(), []
        for k in range(0, num, 20):
            opts = SampleOptions(num=min(20, num - k), form=form, temperature=temperature, seed=seed + k)
            poems += [p["text"] for p in sampler.sample(opts)]
            tick(opts.num, f"default {form}")
        verdicts = [judge(p, lex, form) for p in poems]
        rhymed = [v.form == form and not any(f.rule == "出韻" for f in v.faults) for v in verdicts]
        theirs = [bool(checker.check_poem_rhyming(p)[0]) for p in poems] if form in FORMS else rhymed
        rows.append({"form": form, "samples": num, "seconds": time.perf_counter() - start,
                     "format": sum(v.form == form for v in verdicts) / num, "no_chuyun": sum(rhymed) / num,
                     **({"pingshui_rhyme": sum(theirs) / num} if form in FORMS else {}),
                     "failures": [p for p, r, t in zip(poems, rhymed, theirs) if not (r and t)]})
    return rows


def repeat_rate(poems: list[str]) -> float:
    """Bigrams (two characters inside a line) that equal an earlier one of the same poem, over all
    bigrams (`constraints.repeated_bigrams`)."""
    counts = [repeated_bigrams(p) for p in poems]
    return sum(r for r, _ in counts) / max(sum(n for _, n in counts), 1)


def repeats(sampler: Sampler, corpus: list[str], primes: list[str], count: int = 100, beam: int = 5,
            tick=_quiet) -> dict:
    """The repeated-bigram rate of the corpus (`corpus`, a training split) against the poems greedy
    search and beam search (width `beam`) write, each primed with the first character of one of the
    first `count` quatrains of `primes` (a test split), in that poem's form, with the bigram guard
    (`--no-repeat auto`, their default) and without it (`--no-repeat off`); and of sampling at
    temperature 0.8, where the guard is off by default."""
    starts = [(p[0], form_of(p)) for p in primes if form_of(p) in ("wujue", "qijue") and p[0] in sampler.vocab.stoi]
    starts = starts[:count]
    out = {"corpus_poems": len(corpus), "corpus": repeat_rate(corpus), "poems": len(starts)}
    start = time.perf_counter()
    for name, how in (("greedy", dict(argmax=True)), ("greedy_unguarded", dict(argmax=True, no_repeat="off")),
                      (f"beam{beam}", dict(beam=beam)), (f"beam{beam}_unguarded", dict(beam=beam, no_repeat="off")),
                      ("sampled_t0.8", dict(temperature=0.8))):
        texts = []
        for k, (prime, form) in enumerate(starts):
            texts.append(sampler.sample(SampleOptions(num=1, prime=prime, form=form, seed=k, **how))[0]["text"])
            tick(1, f"repeats {name}")
        out[name] = repeat_rate(texts)
        out[name + "_example"] = max(texts, key=lambda t: repeated_bigrams(t)[0])
    out["seconds"] = time.perf_counter() - start
    return out


def couplet_checks(first: str, second: str, lex: Lexicon) -> dict:
    """Independent of the decoding rule: the 下聯's shape, tone opposition at the 2nd, 4th, 6th and last
    character of each clause (where the 上聯's character has one tone), shared and mirrored characters."""
    a, b = clauses(first + "。"), clauses(second)
    shape = [len(c) for c, _ in a] == [len(c) for c, _ in b]
    opposed = total = 0
    for (ca, _), (cb, _) in zip(a, b) if shape else ():
        for col in opposed_columns(len(ca)):
            if lex.definite(ca[col]):
                total += 1
                opposed += lex.tone(cb[col]) == {"平", "仄"} - {lex.definite(ca[col])}
    x, y = "".join(c for c, _ in a), "".join(c for c, _ in b)
    mirrored = shape and all((x[i] == x[j]) == (y[i] == y[j]) for i in range(len(x)) for j in range(i))
    return {"shape": shape, "opposed": opposed, "positions": total, "shared": bool(set(x) & set(y)),
            "mirrored": bool(mirrored)}


def couplet_firsts(poems: list[str], vocab, count: int) -> list[str]:
    """The first `count` 上聯 `couplets` asks for: the 3rd lines of the quatrains, or the first lines
    of the couplets, that the couplet decoder takes (`SampleOptions.validate`: the vocabulary writes
    them and the lexicon calls their last character 仄)."""
    firsts = []
    for p in poems:
        lines = split_lines(p)
        first = lines[2] if form_of(p) in ("wujue", "qijue") else (lines[0] if len(lines) == 2 else "")
        if first and _decoder_takes(first, vocab):
            firsts.append(first)
            if len(firsts) == count:
                break
    return firsts


def _decoder_takes(first: str, vocab) -> bool:
    try:
        SampleOptions(couplet=first).validate(vocab)
    except DecodeError:
        return False
    return True


def couplets(sampler: Sampler, poems: list[str], count: int = 100, temperature: float = 1.0, seed: int = 0,
             tick=_quiet) -> dict:
    """下聯 for `count` 上聯 ending in 仄: the 3rd lines of the quatrains among `poems`, or the first
    lines of its couplets, that the vocabulary can write; default settings but the temperature. The
    share of opposed tones, of 下聯 without a character of the 上聯, with 疊字 mirrored, in shape."""
    lex = Lexicon.load()
    firsts = couplet_firsts(poems, sampler.vocab, count)
    start = time.perf_counter()
    checks = []
    for k, first in enumerate(firsts):
        text = sampler.sample(SampleOptions(num=1, couplet=first, temperature=temperature, seed=seed + k))[0]["text"]
        checks.append(couplet_checks(first, text[len(first) + 1:], lex))
        tick(1, "couplets")
    n = len(checks)
    return {"couplets": n, "shape": sum(c["shape"] for c in checks) / n,
            "tone_opposition": sum(c["opposed"] for c in checks) / max(sum(c["positions"] for c in checks), 1),
            "no_shared_character": sum(not c["shared"] for c in checks) / n,
            "mirrored": sum(c["mirrored"] for c in checks) / n, "seconds": time.perf_counter() - start}


def frequent_characters(poems: list[str], count: int = 500) -> list[str]:
    chars = Counter(ch for p in poems for line in split_lines(p) for ch in line)
    return [ch for ch, _ in chars.most_common(count)]


def keyword_hits(sampler: Sampler, poems: list[str], requests: int = 200, forms=("wujue", "qijue"),
                 tones: str = "loose", temperature: float = 0.8, seed: int = 0, tick=_quiet) -> list[dict]:
    """Per form: `requests` random pairs of distinct characters from the 500 most frequent in
    `poems`, one poem each; the share of requests the sampler accepts (feasible), of keywords found
    in the accepted poems, and of poems in the form."""
    rng = np.random.default_rng(seed)
    pool = [ch for ch in frequent_characters(poems) if ch in sampler.vocab.stoi]
    rows = []
    for form in forms:
        start = time.perf_counter()
        hits = kept = refused = 0
        for k in range(requests):
            pair = tuple(rng.choice(pool, 2, replace=False))
            tick(1, f"keywords {form}")
            try:
                text = sampler.sample(SampleOptions(num=1, form=form, tones=tones, keywords=pair,
                                                    temperature=temperature, seed=seed + k))[0]["text"]
            except UserError:
                refused += 1
                continue
            hits += sum(w in text for w in pair)
            kept += form_of(text) == form
        done = requests - refused
        rows.append({"form": form, "requests": requests, "feasible": done / requests,
                     "keyword_hit_rate": hits / max(2 * done, 1), "format": kept / max(done, 1),
                     "seconds": time.perf_counter() - start})
    return rows


def _line_bits(bits: np.ndarray, text: str, lines: tuple) -> list[float]:
    """The surprisal of the characters of the given 0-based lines (punctuation left out)."""
    n = FORMS[form_of(text)][0]
    return [float(bits[line * (n + 1) + j]) for line in lines for j in range(n)]


def fill_in(sampler: Sampler, poems: list[str], count: int = 100, blank=(1, 3), temperature: float = 0.8,
            seed: int = 0, tick=_quiet) -> dict:
    """Blank lines `blank` of the first `count` quatrains among `poems` (those the vocabulary can
    write) and fill them in; the share of
    locked characters kept, and the mean NLL (bits per character) under the model of the filled
    lines, of the poet's own lines, and of the same lines of unconstrained samples of the form."""
    quatrains = [p for p in poems if form_of(p) in ("wujue", "qijue") and not sampler.vocab.unknown(p)][:count]
    kept = total = 0
    filled_bits, original_bits, free_bits = [], [], []
    start = time.perf_counter()
    for k, poem in enumerate(quatrains):
        lines = split_lines(poem)
        template = "".join(("＿" * len(line) if i in blank else line) + LINE_ENDS[i % 2]
                           for i, line in enumerate(lines))
        text = sampler.sample(SampleOptions(num=1, template=template, temperature=temperature, seed=seed + k))[0]["text"]
        free = sampler.sample(SampleOptions(num=1, form=form_of(poem), temperature=temperature, seed=seed + k))[0]["text"]
        locked = [(j, ch) for j, ch in enumerate(template) if ch != "＿"]
        kept += sum(j < len(text) and text[j] == ch for j, ch in locked)
        total += len(locked)
        bits = surprisal(sampler.m, sampler.vocab, [text, poem, free])
        filled_bits += _line_bits(bits[0], text, blank)
        original_bits += _line_bits(bits[1], poem, blank)
        free_bits += _line_bits(bits[2], free, blank)
        tick(1, "fill-in")
    return {"poems": len(quatrains), "locked_kept": kept / max(total, 1),
            "bits_filled": float(np.mean(filled_bits)), "bits_original": float(np.mean(original_bits)),
            "bits_unconstrained": float(np.mean(free_bits)), "seconds": time.perf_counter() - start}


def format_report(result: dict) -> str:
    """The measurements as lines of text (what `symlstm measure` prints)."""
    out = []
    for row in result.get("strict", []):
        out.append(f"strict {row['form']:<6} {row['samples']} samples: format {row['format']:.1%}, pingshui-rhyme meter "
                   f"{row['pingshui_meter']:.1%}, rhyme {row['pingshui_rhyme']:.1%}, both {row['pingshui_both']:.1%}; "
                   f"symlstm score {row['score_pass']:.1%} ({row['seconds']:.1f} s)")
        for text in row["failures"][:5]:
            out.append(f"  failed: {text}")
    shi = [r for r in result.get("defaults", []) if r["form"] in FORMS]
    for row in shi:
        out.append(f"default {row['form']:<6} {row['samples']} samples: format {row['format']:.1%}, no 出韻 by symlstm "
                   f"score {row['no_chuyun']:.1%}, pingshui-rhyme rhyme {row['pingshui_rhyme']:.1%} ({row['seconds']:.1f} s)")
        out += [f"  failed: {text}" for text in row["failures"][:5]]
    ci = [r for r in result.get("defaults", []) if r["form"] not in FORMS]
    if ci:
        worst = min(ci, key=lambda r: r["no_chuyun"])
        out.append(f"default ci: {len(ci)} tunes × {ci[0]['samples']} samples: format {min(r['format'] for r in ci):.1%} "
                   f"at worst, no 出韻 by symlstm score {worst['no_chuyun']:.1%} at worst ({worst['form']}) "
                   f"({sum(r['seconds'] for r in ci):.0f} s)")
        out += [f"  failed: {text}" for r in ci for text in r["failures"][:2]][:5]
    if "repeats" in result:
        r = result["repeats"]
        out.append(f"repeated bigrams: the corpus {r['corpus']:.2%} ({r['corpus_poems']} poems); {r['poems']} poems primed "
                   f"by test quatrains' first characters: greedy {r['greedy']:.2%} (unguarded {r['greedy_unguarded']:.2%}), "
                   + ", ".join(f"{k} {r[k]:.2%} (unguarded {r[k + '_unguarded']:.2%})" for k in r
                               if k.startswith("beam") and not k.endswith(("_unguarded", "_example")))
                   + f", sampled at 0.8 {r['sampled_t0.8']:.2%} ({r['seconds']:.0f} s)")
        out.append(f"  unguarded greedy at its worst: {r['greedy_unguarded_example']}")
    for row in result.get("keywords", []):
        out.append(f"keywords {row['form']:<6} {row['requests']} pairs: feasible {row['feasible']:.1%}, hit rate "
                   f"{row['keyword_hit_rate']:.1%}, format {row['format']:.1%} ({row['seconds']:.1f} s)")
    if "tunes" in result:
        rows = result["tunes"]
        out.append(f"ci tunes: {len(rows)} tunes × {rows[0]['samples']} samples: format {min(r['format'] for r in rows):.1%} "
                   f"at worst, symlstm score {min(r['score_pass'] for r in rows):.1%} at worst "
                   f"({sum(r['seconds'] for r in rows):.0f} s)")
    if "couplets" in result:
        r = result["couplets"]
        out.append(f"couplets: {r['couplets']} 上聯 of the test split: tones opposed at 二四六 and the end "
                   f"{r['tone_opposition']:.1%}, no character of the 上聯 {r['no_shared_character']:.1%}, 疊字 mirrored "
                   f"{r['mirrored']:.1%}, in shape {r['shape']:.1%} ({r['seconds']:.1f} s)")
    if "fillin" in result:
        r = result["fillin"]
        out.append(f"fill-in {r['poems']} quatrains, lines 2 and 4 blank: locked characters kept {r['locked_kept']:.1%}; "
                   f"bits per character of lines 2 and 4: filled {r['bits_filled']:.2f}, the poet's "
                   f"{r['bits_original']:.2f}, unconstrained samples {r['bits_unconstrained']:.2f} ({r['seconds']:.1f} s)")
    return "\n".join(out)
