"""The 平水韻 lexicon: tones and rhyme groups of famous characters, and its figures against a corpus."""


def test_lexicon_knows_famous_tones(lex):
    assert lex.tone("東") == {"平"} and lex.tone("月") == {"仄"} and lex.tone("白") == {"仄"}
    assert lex.tone("山") == {"平"} and lex.tone("看") == {"平", "仄"}  # 看 reads both ways
    assert "上平聲一東" in lex.groups["東"] and lex.groups["樓"] & lex.groups["流"]


def test_strains_agreement_and_coverage_count_what_they_say(lex):
    from symlstm.poetics.lexicon import coverage, strains_agreement

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


def test_strains_tones_keep_only_many_agreeing_annotations():
    from symlstm.poetics.lexicon import STRAINS_MIN_COUNT, Lexicon, strains_tones

    assert STRAINS_MIN_COUNT == 20
    lex = Lexicon({"山": {"平"}}, {"山": {"上平聲十五刪"}}, {"山": {"上平聲十五刪"}})  # knows 山 alone
    texts, strains = [], {}
    for k in range(60):  # 甲 平 60 times; 乙 平 but once 仄 (59/60); 丙 half and half; 丁 19 times; a unique last
        text = "甲乙丙" + ("丁" if k < 19 else "山") + chr(0x5000 + k)
        texts.append(text)
        strains[f"p{k}"] = ["平" + ("仄" if k == 0 else "平") + ("平" if k % 2 else "仄") + "平平"]
    ids = {t: f"p{k}" for k, t in enumerate(texts)}
    assert strains_tones(texts, ids, strains, lex) == {"甲": "平", "乙": "平"}
    strains["p1"] = ["平仄平平平"]  # a second 仄 for 乙: 58/60 is below 98 %
    assert strains_tones(texts, ids, strains, lex) == {"甲": "平"}


def test_variants_are_the_table_forms_with_the_same_simplified_character():
    """OpenCC's traditional-to-simplified table, an independent source, says which forms are one character."""
    import opencc

    from symlstm.poetics.lexicon import Lexicon, variants

    bare = Lexicon.load(supplement=False)  # the table without its supplement
    assert not bare.tone("迴") and not bare.tone("羣")
    found = variants("迴羣東疎", bare, opencc.OpenCC("t2s").convert)
    assert found == {"迴": ["回"], "羣": ["群"]}  # 東 is in the table; 疎 has no variant there


def test_the_supplement_fills_the_tables_gaps_in_order(lex):
    from symlstm.poetics.lexicon import BY_HAND

    assert lex.groups["啼"] == set(BY_HAND["啼"]) == {"上平聲八齊"}  # 春曉's 啼鳥, 楓橋夜泊's 烏啼
    assert lex.tone("迴") == lex.tone("回") and lex.groups["迴"] == lex.groups["回"]  # a variant: 回's readings
    assert lex.annotated and all(lex.tone(ch) and not lex.rhymes_known(ch) for ch in lex.annotated)


def test_the_shipped_supplement_is_what_write_supplement_writes(tmp_path):
    import json
    from pathlib import Path

    import pytest

    from symlstm.poetics.lexicon import write_supplement
    from symlstm.poetics.script import table

    full = Path(__file__).resolve().parents[2] / "data" / "full"
    if not (full / "tang_ids.json").is_file():
        pytest.skip("needs make data")
    out = write_supplement(full, tmp_path / "supplement.json")
    assert json.loads(out.read_text(encoding="utf-8")) == json.loads(table("supplement.json").read_text(encoding="utf-8"))
