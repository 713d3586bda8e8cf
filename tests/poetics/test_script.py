"""Poems as people type them (`script.normalize_poem`): every way of writing 登鸛雀樓 reads as the
same poem, simplified characters are converted (and said), what cannot be read is refused in one
line naming it."""
import pytest

from symlstm.poetics.script import CJK, PoemError, normalize_poem, table, to_traditional

from conftest import QUATRAINS

POEM = "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"
WAYS = {
    "spaces between lines": "白日依山盡 黃河入海流 欲窮千里目 更上一層樓",
    "a space after each mark": "白日依山盡， 黃河入海流。 欲窮千里目， 更上一層樓。",
    "one line per row": "白日依山盡\n黃河入海流\n欲窮千里目\n更上一層樓\n",
    "no punctuation at all": "白日依山盡黃河入海流欲窮千里目更上一層樓",
    "ASCII , and .": "白日依山盡,黃河入海流.欲窮千里目,更上一層樓.",
    "no final mark": "白日依山盡，黃河入海流。欲窮千里目，更上一層樓",
    "a question at the end": "白日依山盡，黃河入海流。欲窮千里目，更上一層樓？",
    "the title in 《》": "《登鸛雀樓》白日依山盡，黃河入海流。欲窮千里目，更上一層樓。",
    "the title on its own row": "登鸛雀樓\n白日依山盡，黃河入海流。\n欲窮千里目，更上一層樓。",
    "full-width spaces": "白日依山盡\u3000黃河入海流\u3000欲窮千里目\u3000更上一層樓",
}


@pytest.mark.parametrize("way", WAYS)
def test_every_way_of_writing_a_quatrain_reads_as_the_quatrain(way):
    assert normalize_poem(WAYS[way]) == (POEM, False)


def test_simplified_characters_are_converted_and_said_and_kept_on_request():
    assert normalize_poem("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。") == (POEM, True)
    assert normalize_poem("白日依山尽，黄河入海流。欲穷千里目，更上一层楼。", convert=False)[0][4] == "尽"
    # a traditional character the simplified table would also rewrite stays as typed (征, not 徵)
    assert normalize_poem("青山橫北郭，白水繞東城。此地一為別，孤蓬萬里征。")[0].endswith("孤蓬萬里征。")


def test_conversion_changes_no_character_of_the_shipped_corpus_and_still_converts_simplified_ones():
    """The shipped corpus writes 却 651 times (卻 30), 荆, 烟, 脚 …, which s2t rewrites: 1,022 of its
    14,035 poems changed before. A text is converted only where it holds a character that exists in
    simplified use alone; then its 黄 becomes 黃 too."""
    import re

    assert [p for p in QUATRAINS if to_traditional(p) != p] == []  # the whole corpus, the test split within it
    assert table("corpus_chars.txt").read_text(encoding="utf-8").strip() == \
        "".join(sorted(set(re.findall(CJK, "".join(QUATRAINS)))))  # the table is the corpus's characters
    assert to_traditional("却道海棠依舊好") == "却道海棠依舊好" and to_traditional("黄河") == "黄河"
    assert to_traditional("举头望明月，低头思故乡。") == "舉頭望明月，低頭思故鄉。"
    assert to_traditional("却道黄河远") == "卻道黃河遠"  # 远: simplified alone, so the text is simplified


def test_a_ci_keeps_its_own_marks_and_gets_a_final_one():
    ci = "一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回？無可奈何花落去，似曾相識燕歸來。小園香徑獨徘徊"
    assert normalize_poem(ci) == (ci + "。", False)


@pytest.mark.parametrize("text, message", [
    ("Hello world.", "line 1 (Hello): 'H' is not a Chinese character"),
    ("白日依山盡，黃河a海流。", "line 2 (黃河a海流): 'a' is not a Chinese character"),
    ("白日依山盡，黃河入海流。🌙", "line 3 (🌙): '🌙' is not a Chinese character"),
    ("  ", "no poem"),
    ("山" * 401, "401 characters: a poem here has at most 400"),
])
def test_what_cannot_be_read_is_refused_naming_it(text, message):
    with pytest.raises(PoemError, match=message.replace("(", r"\(").replace(")", r"\)")):
        normalize_poem(text)
