"""Couplets (對聯): the 下聯 mirrors the 上聯's shape, opposes its tones, shares none of its characters
except mirrored 疊字; judged by rules written out here from symlstm/poetics/tables/pingshui.json."""
import numpy as np
import pytest

from symlstm import ModelConfig, SampleOptions, Vocab, compile_model, init_params
from symlstm.run.evaluate import evaluate_couplets
from symlstm.workbench.decode import DecodeError

from conftest import QUATRAINS, ROOT, tiny_sampler
from reference import forward, pingshui_table

POEMS = QUATRAINS[:2000]
TONES, _ = pingshui_table(ROOT / "symlstm" / "poetics" / "tables" / "pingshui.json")


@pytest.fixture(scope="module")
def sampler():
    return tiny_sampler(POEMS + ["風聲雨聲讀書聲，聲聲入耳。", "蚊蚋成雷澤，星辰在夜空。"], seed=6)


@pytest.mark.parametrize("first", ["白日依山盡", "兩岸猿聲啼不住", "風聲雨聲讀書聲，聲聲入耳", "春風又綠江南岸",
                                   "朝朝汲淮水", "辭貴不辭賤"])  # 疊字 at a place whose tone is asked, and one not
def test_second_lines_oppose_mirror_and_share_nothing(sampler, first):
    for p in sampler.sample(SampleOptions(num=20, couplet=first, temperature=1.3, seed=2)):
        assert p["text"].startswith(first + "，")
        second = p["text"][len(first) + 1:]
        assert len(second) == len(first) + 1 and second[-1] == "。"
        assert [c for c in second[:-1] if c in "，"] == [c for c in first if c in "，"]
        clauses_a, clauses_b = first.split("，"), second[:-1].split("，")
        for a, b in zip(clauses_a, clauses_b):
            for col in sorted(set(range(1, len(a), 2)) | {len(a) - 1}):  # 2nd, 4th, 6th and last
                if len(TONES.get(a[col], ())) == 1:
                    assert TONES.get(b[col]) == {"平", "仄"} - TONES[a[col]], (first, second, col)
        x, y = first.replace("，", ""), second[:-1].replace("，", "")
        for i in range(len(x)):
            for j in range(i):
                assert (x[i] == x[j]) == (y[i] == y[j]), (first, second)  # 疊字 mirrored, no other repeat
        assert not set(x) & set(y)


def test_a_first_line_ending_in_ping_is_refused(sampler):
    with pytest.raises(DecodeError, match="it ends in 流, 平; a 上聯 ends in 仄 and its 下聯 in 平"):
        sampler.sample(SampleOptions(couplet="黃河入海流"))
    with pytest.raises(DecodeError, match="does not combine with --form"):
        sampler.sample(SampleOptions(couplet="白日依山盡", form="wujue"))


def test_couplet_perplexity_counts_the_second_line_only():
    vocab = Vocab.build(POEMS[:200])
    cfg = ModelConfig(embedding=6, hidden=7, dtype="float64", init_scale=0.4)
    params = init_params(len(vocab), cfg, 0)
    lines = ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]
    got = evaluate_couplets(compile_model(params, cfg), vocab, lines)
    total = count = 0.0
    for line in lines:  # the whole line in NumPy, then only the 下聯's targets (its 6 tokens + <eos>)
        ids = vocab.encode(line)
        z = np.zeros((1, 1, 7))
        logp, _, _ = forward(params, "lstm", 1, ids[:-1, None], np.ones((len(ids) - 1, 1)), z, z)
        picked = logp[np.arange(len(ids) - 1), 0, ids[1:]][len(line) // 2:]
        total, count = total - picked.sum(), count + picked.size
    assert got["tokens"] == count == 14 and got["nll_per_token"] == pytest.approx(total / count, rel=1e-10)


def test_measured_couplets_start_only_from_lines_the_decoder_takes():
    """`measure couplets` asks the decoder's own validation which 上聯 it takes (it once restated the
    rule beside it, picked 終日隨征斾, which the decoder then read differently, and stopped): a line
    ending in 平 or in a character of unknown tone (疎: in neither the table nor its supplement) is
    left out; 斾, 仄 by the supplement only, is taken, as the decoder reads a 上聯 with it."""
    from symlstm.workbench.measure import couplet_firsts

    poems = ["山中春已晚，處處見花開。終日隨征斾，何時更到來。", "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。",
             "江上一帆遠，山中兩鳥歸。行人何日疎，日暮與君違。", "林中花自落，月下客初還。坐看雲影閒，獨對石床寒。"]
    vocab = Vocab.build(poems)
    assert couplet_firsts(poems, vocab, 10) == ["終日隨征斾", "欲窮千里目"]


def test_the_first_line_is_read_with_the_supplement(sampler):
    """蚋 is 仄 by the lexicon's supplement and unknown to the 平水韻 table: the 下聯 opposes it (a 平
    of the table there), as `measure couplets`, which reads with the supplement, checks. Reading the
    上聯 with the table alone left that place free, and 1 of 300 asked places failed the measure."""
    assert "蚋" not in TONES
    for p in sampler.sample(SampleOptions(num=20, couplet="蚊蚋成雷澤", temperature=1.3, seed=3)):
        second = p["text"][len("蚊蚋成雷澤") + 1:]
        assert TONES.get(second[1]) == {"平"}, second
