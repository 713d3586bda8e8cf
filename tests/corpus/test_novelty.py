"""What a sample shares with the training poems (`corpus.novelty`), against sets of lines and 4-grams."""
import random

from symlstm.corpus.novelty import NoveltyIndex

from conftest import QUATRAINS


def test_novelty_of_a_training_poem_and_of_a_shuffle():
    train = QUATRAINS[:3000]
    index = NoveltyIndex(train)
    copied = index.report(train[42])
    assert copied["longest_shared"] == len(train[42]) and copied["verbatim_lines"] == 1.0
    assert copied["novel_4grams"] == 0.0
    chars = list(train[42])
    random.Random(0).shuffle(chars)
    fresh = index.report("".join(chars))
    assert fresh["longest_shared"] <= 4 and fresh["verbatim_lines"] == 0.0 and fresh["novel_4grams"] > 0.8


def test_novelty_index_answers_as_sets_of_lines_and_4grams_would():
    import re

    from symlstm.poetics.script import PUNCT

    train, test = QUATRAINS[:3000], QUATRAINS[3000:3200]
    index = NoveltyIndex(train)
    lines = {line for t in train for line in re.split(f"[{PUNCT}]", t) if line}
    grams = {t[i:i + 4] for t in train for i in range(len(t) - 3)}
    rng = random.Random(1)
    queries = test + train[:200] + ["".join(rng.sample(t, len(t))) for t in test]
    queries.append(train[0][-2:] + train[1][:2])  # spans two training poems: in neither
    checked = 0
    for t in queries:
        for g in (t[i:i + 4] for i in range(len(t) - 3)):
            assert index.has_gram(g) == (g in grams), g
            checked += 1
        for line in (line for line in re.split(f"[{PUNCT}]", t) if line):
            assert index.has_line(line) == (line in lines), line
    assert checked > 10000 and not index.has_gram("☃山中人")
