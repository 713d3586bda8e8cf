"""Batches of encoded poems as time-major NumPy arrays (x, y, mask), each (T, B).

Poem mode: rows are whole `<bos> c1 … cn <eos>` sequences, bucketed by length so that padding is
small; x is the sequence without its last token, y without its first. Stream mode: the corpus is
one token stream cut into B rows that continue from one batch to the next (truncated BPTT).
"""
from collections.abc import Sequence

import numpy as np

from symlstm.errors import InputError


def lengths_of(seqs) -> np.ndarray:
    """Sequence lengths: those a `corpus.Sequences` holds, else measured."""
    return seqs.lengths if hasattr(seqs, "lengths") else np.array([len(s) for s in seqs], dtype=np.int64)


def flat(seqs) -> np.ndarray:
    """All tokens of the sequences back to back."""
    return seqs.ids if hasattr(seqs, "ids") else np.concatenate(list(seqs))


def _steps(longest: int, multiple: int) -> int:
    """T of a batch whose longest sequence has `longest` tokens: longest - 1 inputs, rounded up
    to a multiple."""
    return -(-(longest - 1) // multiple) * multiple


def _pad(seqs, batch_size, dtype, multiple=1, steps=None):
    """Pad rows to the longest (rounded up to a multiple; or to `steps`) and, if batch_size is given,
    add empty rows up to it."""
    T = steps if steps is not None else _steps(max(len(s) for s in seqs), multiple)
    B = batch_size or len(seqs)
    x = np.zeros((T, B), np.int32)
    y = np.zeros((T, B), np.int32)
    mask = np.zeros((T, B), dtype)
    for b, s in enumerate(seqs):
        n = len(s) - 1
        x[:n, b], y[:n, b], mask[:n, b] = s[:-1], s[1:], 1
    return x, y, mask


class PoemBatches(Sequence):
    """(x, y, mask) batches covering every sequence exactly once, padded only when taken: an epoch
    of the whole corpus is a list of row indices, not ≈ 90 MB of padded arrays (9,219 batches).

    With rng: shuffled, then sorted by length within pools of `pool` batches (bucketing), and the
    batches shuffled (pool=0: no bucketing). Without rng: in length order (evaluation). fill=True
    pads the last batch with empty rows (mask 0) so every batch has batch_size rows, and `multiple`
    rounds T up, so that a static-shape backend (JAX) compiles few distinct shapes.
    """

    def __init__(self, seqs, batch_size: int, rng=None, dtype="float32", pool: int = 50, fill: bool = True,
                 multiple: int = 1):
        self.seqs, self.dtype, self.multiple = seqs, dtype, multiple
        self.rows = batch_size if fill else None
        order = np.arange(len(seqs))
        if rng is not None:
            order = rng.permutation(len(seqs))
        lengths = lengths_of(seqs)[order]
        size = batch_size * pool
        chunks = [order[k:k + size][np.argsort(lengths[k:k + size], kind="stable")]
                  for k in range(0, len(order), size)] if pool else [order]
        self.index = [c[k:k + batch_size] for c in chunks for k in range(0, len(c), batch_size)]
        if rng is not None:
            self.index = [self.index[i] for i in rng.permutation(len(self.index))]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        return _pad([self.seqs[i] for i in self.index[k]], self.rows, self.dtype, self.multiple)


class RowsOf(Sequence):
    """Rows `rows` of every batch of `batches` (a `PoemBatches`, or a list of (x, y, mask)), each
    built alone: of a `PoemBatches` only those rows are padded (to the whole batch's T), so that a
    process of a run of several never builds the others' rows."""

    def __init__(self, batches, rows: slice):
        self.batches, self.rows = batches, rows
        self.lengths = lengths_of(batches.seqs) if isinstance(batches, PoemBatches) else None

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k):
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(len(self)))]
        b = self.batches
        if self.lengths is None:
            return tuple(np.ascontiguousarray(a[:, self.rows]) for a in b[k])
        index = b.index[k]
        T = _steps(int(self.lengths[index].max()), b.multiple)
        start, stop, _ = self.rows.indices(b.rows or len(index))
        mine = [b.seqs[i] for i in index[start:stop]]  # rows past the poems are empty (mask 0)
        return _pad(mine, stop - start, b.dtype, steps=T) if mine else \
            _pad([np.zeros(1, np.int32)], stop - start, b.dtype, steps=T)


def batch_shapes(batches) -> set:
    """The (T, B) shapes of a list of batches or a `PoemBatches` (or rows of one), the latter without
    padding any."""
    if isinstance(batches, RowsOf):
        return {(T, len(range(*batches.rows.indices(B)))) for T, B in batch_shapes(batches.batches)}
    if not isinstance(batches, PoemBatches):
        return {x.shape for x, _, _ in batches}
    lengths, m = lengths_of(batches.seqs), batches.multiple
    return {(_steps(int(lengths[idx].max()), m), batches.rows or len(idx)) for idx in batches.index}


def poem_batches(seqs, batch_size: int, rng=None, dtype="float32", pool: int = 50, fill: bool = True,
                 multiple: int = 1) -> PoemBatches:
    """The batches of `PoemBatches` (same arguments); iterate over them or index them."""
    return PoemBatches(seqs, batch_size, rng, dtype, pool, fill, multiple)


def padding_fraction(batches) -> float:
    """Share of (T × B) positions that are padding, over a list of (x, y, mask) batches."""
    total = sum(m.size for _, _, m in batches)
    return 1 - sum(float(m.sum()) for _, _, m in batches) / max(total, 1)


def stream_batches(seqs, batch_size: int, seq_length: int, dtype="float32", offset: int = 0):
    """Yield (x, y, mask) windows of a single stream: the concatenated sequences are cut into
    batch_size contiguous rows; batch k holds columns [k T, (k+1) T) of every row, so row b of
    batch k+1 continues row b of batch k and the final states carry over. `offset` shifts the
    start (a different cut each epoch)."""
    ids = flat(seqs)[offset:]
    per_row = (len(ids) - 1) // batch_size
    if per_row < 1:
        raise InputError(f"a stream of {len(ids)} tokens is too short for {batch_size} rows (data.batch_size)")
    data = ids[:per_row * batch_size + 1]
    xs = data[:-1].reshape(batch_size, per_row)
    ys = data[1:].reshape(batch_size, per_row)
    for t in range(0, per_row - seq_length + 1, seq_length):
        x = np.ascontiguousarray(xs[:, t:t + seq_length].T)  # (T, B)
        y = np.ascontiguousarray(ys[:, t:t + seq_length].T)
        yield x, y, np.ones(x.shape, dtype)
