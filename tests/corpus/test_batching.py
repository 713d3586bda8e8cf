"""Bucketed poem batches and stream windows."""
import numpy as np

from symlstm.corpus.batching import batch_shapes, padding_fraction, poem_batches, stream_batches


def _seqs(rng, n=300):
    return [rng.integers(4, 50, rng.integers(3, 40)).astype(np.int32) for _ in range(n)]


def test_bucketing_keeps_every_token_once_with_little_padding():
    rng = np.random.default_rng(0)
    seqs = _seqs(rng)
    batches = list(poem_batches(seqs, 16, np.random.default_rng(1), pool=20, fill=False))
    rows = []
    for x, y, mask in batches:
        for b in range(x.shape[1]):
            n = int(mask[:, b].sum())
            assert mask[:n, b].all() and not mask[n:, b].any()  # padding only at the end
            np.testing.assert_array_equal(x[1:n, b], y[:n - 1, b])  # y is x shifted by one
            rows.append(tuple(x[:n, b]) + (y[n - 1, b],))
    assert sorted(rows) == sorted(tuple(s) for s in seqs)
    assert padding_fraction(batches) < 0.05
    unsorted = [(x, y, m) for x, y, m in poem_batches(seqs, 16, np.random.default_rng(1), pool=0, fill=False)]
    assert padding_fraction(unsorted) > 0.2  # what bucketing saves


def test_fill_pads_rows_to_the_batch_size():
    seqs = _seqs(np.random.default_rng(2), n=37)
    shapes = {x.shape[1] for x, _, _ in poem_batches(seqs, 16, np.random.default_rng(3))}
    assert shapes == {16}
    total = sum(float(m.sum()) for _, _, m in poem_batches(seqs, 16, np.random.default_rng(3)))
    assert total == sum(len(s) - 1 for s in seqs)


def test_shuffling_is_seeded():
    seqs = _seqs(np.random.default_rng(4))
    a = [x.tolist() for x, _, _ in poem_batches(seqs, 8, np.random.default_rng(5))]
    b = [x.tolist() for x, _, _ in poem_batches(seqs, 8, np.random.default_rng(5))]
    c = [x.tolist() for x, _, _ in poem_batches(seqs, 8, np.random.default_rng(6))]
    assert a == b and a != c


def test_stream_rows_continue_from_batch_to_batch():
    seqs = [np.arange(k * 10, k * 10 + 10, dtype=np.int32) for k in range(20)]  # stream 0..199
    batches = list(stream_batches(seqs, batch_size=4, seq_length=5))
    assert all(x.shape == (5, 4) for x, _, _ in batches)
    for (x1, _, _), (x2, _, _) in zip(batches, batches[1:]):
        np.testing.assert_array_equal(x2[0], x1[-1] + 1)  # each row goes on where it stopped
    x, y, _ = batches[0]
    np.testing.assert_array_equal(y, x + 1)


def test_length_multiple_rounds_the_time_axis_up():
    seqs = _seqs(np.random.default_rng(7))
    for x, y, mask in poem_batches(seqs, 16, np.random.default_rng(8), multiple=8):
        assert x.shape[0] % 8 == 0 and mask[-8:].any()  # the last block of 8 steps holds some real step
    batches = poem_batches(seqs, 16, np.random.default_rng(8), multiple=8)
    assert batch_shapes(batches) == {x.shape for x, _, _ in batches}  # known without padding any
