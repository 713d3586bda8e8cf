"""The vocabulary: the special tokens and their ids, and characters <-> token ids.

The one home of the special ids (the model, the batches, the sampler and the checkpoints all read
them here). Ids 0-3 are fixed; tokens spelled `<...>` are special wherever they sit, so control
tokens added later (a form token such as `<wujue>`) follow the same rules as these four: never
emitted as text, never counted as characters.
"""
import numpy as np

from symlstm.errors import UserError

SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")
PAD, UNK, BOS, EOS = range(len(SPECIALS))


class VocabError(UserError, ValueError):
    """A vocabulary that does not have the layout this version reads."""


def is_special(token: str) -> bool:
    return len(token) > 2 and token[0] == "<" and token[-1] == ">"


class Vocab:
    """Token ids: <pad>=0, <unk>=1, <bos>=2, <eos>=3, then characters in sorted order."""

    def __init__(self, itos):
        self.itos = list(itos)
        if tuple(self.itos[:len(SPECIALS)]) != SPECIALS:
            raise VocabError(f"vocabulary must start with {SPECIALS}, got {tuple(self.itos[:len(SPECIALS)])}")
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.special_ids = [i for i, s in enumerate(self.itos) if is_special(s)]
        self.never_emitted = [i for i in self.special_ids if i != EOS]  # <eos> ends a poem; the rest are input only
        self._memo = {}

    def memo(self, key, build):
        """A table derived from this vocabulary (a mask over it, say), built by `build()` the first
        time `key` is asked for and kept: the decoding constraints build several per poem, and
        building them over 5,000–12,000 tokens each time took over a quarter of a strict 五絕's
        sampling (docs/measurements.md, "vocabulary memo")."""
        if key not in self._memo:
            self._memo[key] = _read_only(build())
        return self._memo[key]

    @classmethod
    def build(cls, poems, min_count: int = 1, controls=()) -> "Vocab":
        """Specials, then the control tokens (`controls`, e.g. the form tokens), then characters."""
        counts = {}
        for p in poems:
            for ch in p:
                counts[ch] = counts.get(ch, 0) + 1
        return cls(list(SPECIALS) + list(controls) + sorted(ch for ch, n in counts.items() if n >= min_count))

    @property
    def has_form_tokens(self) -> bool:
        """Whether the model was trained with a form token in place of <bos> (`data.form_tokens`)."""
        return "<gushi>" in self.stoi

    def never_emitted_mask(self, dtype: str = "float32") -> np.ndarray:
        """(V,) 1 at the tokens a sampler must never emit (`never_emitted`), 0 elsewhere."""
        mask = np.zeros(len(self.itos), dtype)
        mask[self.never_emitted] = 1
        return mask

    def start(self, token: str) -> int:
        """The first input of a sequence: the form token when the vocabulary has form tokens, else <bos>."""
        return self.stoi.get(token, BOS) if self.has_form_tokens else BOS

    def __len__(self):
        return len(self.itos)

    def __eq__(self, other):
        return isinstance(other, Vocab) and self.itos == other.itos

    def encode(self, text: str, bos: bool = True, eos: bool = True, start: int = BOS) -> np.ndarray:
        """<bos> (or `start`, a form token) + the characters' ids + <eos>."""
        ids = [self.stoi.get(ch, UNK) for ch in text]
        return np.array(([start] if bos else []) + ids + ([EOS] if eos else []), dtype=np.int32)

    def decode(self, ids) -> str:
        """Characters only: special tokens are dropped, decoding stops at <eos>."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if not is_special(self.itos[i]):
                out.append(self.itos[i])
        return "".join(out)

    def unknown(self, text: str) -> list[str]:
        """Characters of text outside the vocabulary, in order of first appearance."""
        return list(dict.fromkeys(ch for ch in text if ch not in self.stoi))


def _read_only(table):
    """The arrays in a memoised table (alone, or in a tuple or dict) made read-only: every poem
    shares them, so a constraint that changed one in place would change them all."""
    if isinstance(table, np.ndarray):
        table.setflags(write=False)
    elif isinstance(table, (tuple, list)):
        for part in table:
            _read_only(part)
    elif isinstance(table, dict):
        for part in table.values():
            _read_only(part)
    return table


def unk_rate(encoded) -> float:
    """Share of <unk> among the characters of encoded <bos> … <eos> sequences (a list of arrays or
    `corpus.Sequences`, whose flat array is counted at once)."""
    if hasattr(encoded, "ids"):
        chars, unks = int(np.maximum(encoded.lengths - 2, 0).sum()), int((encoded.ids == UNK).sum())
    else:
        chars, unks = sum(max(0, len(e) - 2) for e in encoded), sum(int((e == UNK).sum()) for e in encoded)
    return unks / max(chars, 1)
