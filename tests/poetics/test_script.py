"""Poems as people type them (`script.normalize_poem`): every way of writing 登鸛雀樓 reads as the
same poem, simplified characters are converted (and said), what cannot be read is refused in one
line naming it."""
import pytest

from symlstm.poetics.script import PoemError, normalize_poem

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
