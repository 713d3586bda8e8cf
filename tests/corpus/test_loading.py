"""Loaders, normalisation, splits, cache and the errors, on fixture files."""
import dataclasses

import numpy as np
import pytest

from symlstm.config import DataConfig
from symlstm.corpus.loading import CorpusError, build_corpus, load_corpus, load_raw, normalize, split_of
from symlstm.poetics.forms import form_of
from symlstm.vocab import BOS, EOS

from conftest import ROOT

FIX = ROOT / "tests" / "fixtures"


def cfg(**kw):
    return DataConfig(path=str(FIX / "poems.txt"), cache=False, **kw)


def test_lines_loader_strips_drops_marks_and_deduplicates():
    poems, removed = normalize(load_raw(cfg(), FIX), cfg())
    assert poems[2] == "春眠不覺曉，處處聞啼鳥。夜來風雨聲，花落知多少。"  # whitespace stripped
    assert not any("□" in p for p in poems)
    assert len(poems) == len(set(poems)) == 7
    assert removed == {"empty": 1, "drop_marks": 1, "min_length": 0, "max_length": 0, "form": 0, "duplicates": 1}


def test_json_loader_joins_paragraphs():
    c = DataConfig(path=str(FIX / "poems.json"), format="json")
    assert load_raw(c, FIX) == ["空山不見人，但聞人語響。返景入深林，復照青苔上。",
                                "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"]


def test_json_glob_and_text_loader():
    assert len(load_raw(DataConfig(path=str(FIX / "*.json"), format="json"), FIX)) == 2
    text = load_raw(DataConfig(path=str(FIX / "prose.txt"), format="text"), FIX)
    assert text == [(FIX / "prose.txt").read_text(encoding="utf-8")]


def test_form_filter_and_lengths():
    assert form_of("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。") == "wujue"
    assert form_of("朝辭白帝彩雲間，千里江陵一日還。兩岸猿聲啼不住，輕舟已過萬重山。") == "qijue"
    assert form_of("國破山河在，城春草木深。感時花濺淚，恨別鳥驚心。烽火連三月，家書抵萬金。白頭搔更短，渾欲不勝簪。") == "wulv"
    assert form_of("白日依山盡，黃河入海流。") is None
    poems, _ = normalize(load_raw(cfg(form="wujue"), FIX), cfg(form="wujue"))
    assert all(len(p) == 24 for p in poems) and len(poems) == 5
    poems, _ = normalize(load_raw(cfg(max_length=24), FIX), cfg(max_length=24))
    assert max(map(len, poems)) == 24


def test_splits_are_stable_when_poems_are_added():
    poems = [f"詩{i}" for i in range(2000)]
    before = {p: split_of(p, 0.05, 0.05) for p in poems}
    more = poems + [f"新{i}" for i in range(500)]
    after = {p: split_of(p, 0.05, 0.05) for p in more}
    assert all(after[p] == before[p] for p in poems)
    share = sum(s == "train" for s in before.values()) / len(before)
    assert 0.86 < share < 0.94


def test_build_corpus_encodes_bos_and_eos_and_reports_unk():
    c = build_corpus(cfg(valid_fraction=0.3, test_fraction=0.3), FIX)
    seqs = [s for split in c.splits.values() for s in split]
    assert all(s[0] == BOS and s[-1] == EOS for s in seqs)
    assert sum(map(len, sum(c.texts.values(), []))) + 2 * len(seqs) == sum(map(len, seqs))
    assert c.stats["train_unk_rate"] == 0.0  # the vocabulary comes from the training split
    assert 0 < c.stats["test_unk_rate"] + c.stats["valid_unk_rate"]


def test_sequences_hold_a_split_in_one_array_and_act_as_a_list():
    from symlstm.corpus.loading import Sequences

    arrays = [np.array(a, np.int32) for a in ([1, 5, 6, 2], [1, 7, 2], [3, 9, 9, 9, 2], [1, 2])]
    seqs = Sequences.of(arrays)
    assert len(seqs) == 4 and seqs.ids.tolist() == sum((a.tolist() for a in arrays), [])
    assert [s.tolist() for s in seqs] == [a.tolist() for a in arrays]
    assert seqs[-1].tolist() == [1, 2] and [s.tolist() for s in seqs[1:3]] == [[1, 7, 2], [3, 9, 9, 9, 2]]
    assert seqs.firsts().tolist() == [1, 1, 3, 1]
    assert [s.tolist() for s in seqs.subset([2, 0])] == [[3, 9, 9, 9, 2], [1, 5, 6, 2]]
    assert [s.tolist() for s in seqs.subset(seqs.firsts() == 3)] == [[3, 9, 9, 9, 2]]
    assert len(seqs.subset([])) == 0 and len(Sequences.of([])) == 0
    with pytest.raises(IndexError):
        seqs[4]
    with pytest.raises(ValueError, match="add up"):
        Sequences(np.zeros(5, np.int32), [2, 2])


def test_cache_hit_invalidation_and_corruption(tmp_path):
    src = tmp_path / "p.txt"
    src.write_text((FIX / "poems.txt").read_text(encoding="utf-8"), encoding="utf-8")
    c = dataclasses.replace(cfg(), path=str(src), cache=True)
    warnings = []
    first = load_corpus(c, tmp_path, tmp_path / "cache", warn=warnings.append)
    second = load_corpus(c, tmp_path, tmp_path / "cache", warn=warnings.append)
    assert (first.stats["cache"], second.stats["cache"]) == ("built", "hit")
    assert second.vocab == first.vocab
    for k in first.splits:
        assert [s.tolist() for s in second.splits[k]] == [s.tolist() for s in first.splits[k]]
    src.write_text(src.read_text(encoding="utf-8") + "江南可采蓮，蓮葉何田田。魚戲蓮葉間，魚戲蓮葉東。\n", encoding="utf-8")
    assert load_corpus(c, tmp_path, tmp_path / "cache", warn=warnings.append).stats["cache"] == "built"
    for f in (tmp_path / "cache").glob("*.h5"):
        f.write_bytes(b"garbage")
    again = load_corpus(c, tmp_path, tmp_path / "cache", warn=warnings.append)
    assert again.stats["cache"] == "built" and any("corrupt" in w for w in warnings)


def test_bad_input_messages(tmp_path):
    with pytest.raises(CorpusError, match="nope.txt: file not found"):
        load_raw(DataConfig(path=str(tmp_path / "nope.txt")), tmp_path)
    with pytest.raises(CorpusError, match="glob matches no file"):
        load_raw(DataConfig(path=str(tmp_path / "*.json")), tmp_path)
    with pytest.raises(CorpusError, match=r"all/\*.json: glob matches no file \(data.path\); `make data` writes it"):
        load_raw(DataConfig(path="data/full/all/*.json"), tmp_path)  # configs/all.yaml before `make data`
    bad = tmp_path / "bad.txt"
    bad.write_bytes("白日".encode() + b"\xff\xfe")
    with pytest.raises(CorpusError, match=r"bad.txt: not UTF-8 at byte offset 6"):
        load_raw(DataConfig(path=str(bad)), tmp_path)
    js = tmp_path / "x.json"
    js.write_text('[{"title": "no paragraphs"}]', encoding="utf-8")
    with pytest.raises(CorpusError, match="not in the chinese-poetry shape"):
        load_raw(DataConfig(path=str(js), format="json"), tmp_path)
    js.write_text('[{"paragraphs": ', encoding="utf-8")
    with pytest.raises(CorpusError, match="x.json: not valid JSON"):
        load_raw(DataConfig(path=str(js), format="json"), tmp_path)
    with pytest.raises(CorpusError, match="no poems left after the form filter .data.form = 'qilv'"):
        normalize(load_raw(cfg(form="qilv"), FIX), cfg(form="qilv"))
    with pytest.raises(CorpusError, match="min_length"):
        normalize(load_raw(cfg(min_length=500), FIX), cfg(min_length=500))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="no poems left after the empty filter"):
        build_corpus(DataConfig(path=str(empty)), tmp_path)
