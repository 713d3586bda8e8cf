"""Ci by tune: the shipped templates against what the 詞譜 say, sampling every shipped tune in its
layout, and the scorer on a famous ci and on one altered to break a rule."""
import pytest

from symlstm import SampleOptions
from symlstm.poetics.judge import judge
from symlstm.poetics.lexicon import Lexicon
from symlstm.poetics.script import clauses
from symlstm.poetics.forms import is_form
from symlstm.poetics.tunes import aliases, derive_aliases, load, parse_layout, resolve, tune_of
from symlstm.workbench.decode import DecodeError

from conftest import QUATRAINS, tiny_sampler

POEMS = QUATRAINS[:2000]
YAN_SHU = "一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回？無可奈何花落去，似曾相識燕歸來。小園香徑獨徘徊。"


@pytest.fixture(scope="module")
def sampler():
    return tiny_sampler(POEMS, seed=2)


def lines_rhyming(tune):
    t = load()[tune]
    ends = [sum(n for n, _ in parse_layout(t["layout"])[:k + 1]) - 1 for k in range(len(parse_layout(t["layout"])))]
    return [[ends.index(k) + 1 for k, s in t["rhymes"] if s == seg] for seg in range(len(t["segments"]))]


def test_templates_agree_with_the_ci_manuals():
    """浣溪沙: six 7-character lines, 平 rhymes on lines 1, 2, 3, 5, 6; 菩薩蠻 changes rhyme every two
    lines, 仄 平 仄 平; 清平樂: four 仄 rhymes, then three 平; 滿江紅 and 念奴嬌 rhyme in 入."""
    t = load()
    assert len(t) == 30 and t["浣溪沙"]["layout"] == "7。7。7。7，7。7。"
    assert lines_rhyming("浣溪沙") == [[1, 2, 3, 5, 6]] and t["浣溪沙"]["segments"] == ["平"]
    assert lines_rhyming("菩薩蠻") == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert t["菩薩蠻"]["segments"] == ["上去", "平", "上去", "平"]
    assert lines_rhyming("清平樂") == [[1, 2, 3, 4], [5, 6, 8]] and t["清平樂"]["segments"] == ["上去", "平"]
    assert t["滿江紅"]["segments"] == ["入"] and t["念奴嬌"]["segments"] == ["入"]
    assert all(len(v["tones"]) == sum(n for n, _ in parse_layout(v["layout"])) for v in t.values())


def test_lexicon_reads_ci_rhyme_groups():
    lex = Lexicon.load()
    assert lex.ci_rhymes("東") == {(1, "平")} and lex.ci_rhymes("月") == {(18, "入")}
    assert (4, "上去") in lex.ci_rhymes("去")


# Other names of tunes as 龍榆生's 唐宋詞格律 gives them (each tune's 又名), independent of the corpus' labels
NAMED = {"望江南・憶江南": ["望江南", "憶江南", "夢江南", "江南好"], "念奴嬌": ["大江東去", "酹江月", "百字令", "壺中天", "湘月"],
         "浣溪沙": ["浣沙溪"], "蝶戀花": ["鵲踏枝", "鳳棲梧", "黃金縷", "卷珠簾"], "賀新郎": ["金縷曲", "乳燕飛", "賀新涼"],
         "菩薩蠻": ["重疊金"], "南歌子": ["南柯子"], "水龍吟": ["龍吟曲"], "滿庭芳": ["滿庭霜", "瀟湘夜雨"],
         "沁園春": ["洞庭春色"], "點絳脣": ["南浦月"], "臨江仙": ["雁後歸"], "清平樂": ["憶蘿月"]}


def test_tunes_answer_to_the_names_the_ci_manuals_give_them():
    for tune, names in NAMED.items():
        for name in [tune, *names]:
            assert resolve(name) == tune and is_form("ci:" + name), name
    assert resolve("望江南・憶江南") == "望江南・憶江南" and resolve("浣紗溪") is None
    owners = {}
    for tune, t in load().items():
        for name in t["aliases"]:
            assert name not in load() and owners.setdefault(name, tune) == tune, name  # one tune per name
    assert len(aliases()) == len(load()) + sum(len(t["aliases"]) for t in load().values())


def test_aliases_come_from_labels_whose_poems_have_the_tunes_length():
    """全宋詞's labels `別名・調名`: a label's names join the tune when its poems have the tune's length
    (within 5 %), and a name two tunes claim joins neither."""
    templates = {"浣溪沙": {"layout": "7。7。7。7，7。7。"}, "念奴嬌": {"layout": "4，5，4。7，6。4，4，5。4，6。" * 2}}
    seven = "一" * 7 + "。"
    by_tune = {"浣沙溪・浣溪沙": [seven * 6, seven * 6, seven * 4],  # two of three at 42 characters
               "減字浣溪沙・浣溪沙": [seven * 4],  # 28 characters: another shape, not a name of 浣溪沙
               "酹江月・念奴嬌": ["一" * 99 + "。"],  # 99 of 100: an editor's lost character
               "同名・浣溪沙": [seven * 6], "同名・念奴嬌": ["一" * 100 + "。"]}
    assert derive_aliases(by_tune, templates) == {"浣溪沙": ["浣沙溪"], "念奴嬌": ["酹江月"]}


@pytest.mark.parametrize("tones", ["strict", "loose", ""])
def test_every_shipped_tune_samples_in_its_layout_with_tones_and_rhymes(sampler, tones):
    """Strict, loose and default samples of every tune pass the scorer, judged with no form named
    (the user's path): loose (the default) holds the 2nd, 4th, 6th character of a clause and the
    rhymes, which is what the scorer calls a fault; strict holds every position the template decides."""
    lex = Lexicon.load()
    for tune, t in load().items():
        want = [n for n, _ in parse_layout(t["layout"])]
        for p in sampler.sample(SampleOptions(num=4, form=f"ci:{tune}", tones=tones, temperature=1.2, seed=3)):
            assert [len(c) for c, _ in clauses(p["text"])] == want, (tune, p["text"])
            v = judge(p["text"], lex)
            assert v.form == f"ci:{tune}" and v.faults == [], (tune, p["text"], v.faults)
            assert tones != "strict" or not v.notes, v.notes
            assert p["tone_rule"] == (tones or "loose") and "note" not in p


def test_a_tune_by_another_name_is_the_same_tune(sampler):
    lex = Lexicon.load()
    (p,) = sampler.sample(SampleOptions(num=1, form="ci:酹江月", seed=4))
    assert SampleOptions(form="ci:憶江南").form == "ci:望江南・憶江南"
    assert judge(p["text"], lex, "ci:大江東去").form == "ci:念奴嬌" == judge(p["text"], lex).form
    assert judge(YAN_SHU, lex, "ci:浣沙溪").faults == [] and judge(YAN_SHU, lex, "ci:浣沙溪").form == "ci:浣溪沙"


def test_keywords_and_acrostic_in_a_ci(sampler):
    for p in sampler.sample(SampleOptions(num=3, form="ci:菩薩蠻", keywords=("明月",), acrostic="春夏", seed=1)):
        assert "明月" in p["text"] and p["text"][0] == "春" and p["text"][8] == "夏", p["text"]
    with pytest.raises(DecodeError, match="--pattern and --rhyme are for the regulated forms"):
        sampler.sample(SampleOptions(form="ci:浣溪沙", rhyme="東"))
    with pytest.raises(DecodeError, match="ci:TUNE with a shipped tune by any of its names: 浣溪沙, .*symlstm tunes") as err:
        sampler.sample(SampleOptions(form="ci:不存在"))
    assert all(tune in str(err.value) for tune in load())  # the refusal lists every tune


def test_the_scorer_judges_a_ci_by_its_tune():
    lex = Lexicon.load()
    assert tune_of(YAN_SHU) == "浣溪沙"
    assert judge(YAN_SHU, lex).faults == []  # 晏殊 浣溪沙: 杯 臺 回 來 徊
    broken = judge(YAN_SHU.replace("燕歸來", "燕歸去"), lex)
    assert [(f.rule, f.line, f.char) for f in broken.faults] == [("出韻", 5, 7)]
    repeated = judge(YAN_SHU.replace("獨徘徊", "獨徘杯"), lex)
    assert [f.rule for f in repeated.faults] == ["重韻"]
    assert judge(YAN_SHU, lex, "ci:菩薩蠻").form is None  # not that tune's layout
