"""The vocabulary: special ids first, characters sorted, unknowns counted."""
import numpy as np

from symlstm.vocab import BOS, EOS, UNK, Vocab


def test_vocab_specials_sorting_and_unknowns():
    v = Vocab.build(["乙甲", "甲丙"], min_count=2)
    assert v.itos == ["<pad>", "<unk>", "<bos>", "<eos>", "甲"]
    ids = v.encode("甲乙")
    assert ids.tolist() == [BOS, 4, UNK, EOS] and ids.dtype == np.int32
    assert v.decode(ids) == "甲"  # specials dropped
    assert v.unknown("乙甲丁") == ["乙", "丁"]
    assert Vocab.build(["乙甲", "甲丙"], 1).itos[4:] == sorted("甲乙丙")
