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
