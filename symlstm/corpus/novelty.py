"""Memorisation check: how much of a generated poem the training split already holds.

The index is built once from the training poems, compactly enough for the whole corpus (a set of
its 4-grams as Python strings took several times the memory and time: docs/measurements.md,
"novelty index"):
the poems joined by newlines (for substring search, which Python runs in C), the same with every
punctuation mark a newline (a line is then a whole line of some poem when it stands between two
newlines), and the character 4-grams as a sorted array of 64-bit keys (four 16-bit character
numbers, exact while the poems have fewer than 65,536 distinct characters, else a set of strings).
"""
import re

import numpy as np

from symlstm.poetics.script import PUNCT, split_lines


def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique by sorting: NumPy 2.3's hash-based np.unique was twenty times slower on the whole
    corpus' 4-gram keys (docs/measurements.md, "unique by sorting")."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if len(a) else a


class NoveltyIndex:
    def __init__(self, train_texts: list[str]):
        self.blob = "\n" + "\n".join(train_texts) + "\n"
        self.line_blob = re.sub(f"[{PUNCT}]", "\n", self.blob)
        codes = np.frombuffer("\0".join(train_texts).encode("utf-32-le"), np.uint32)  # (N,) code points
        self.chars = _sorted_unique(codes)  # "\0" (between poems) among them
        if not len(self.chars) or len(self.chars) >= 2 ** 16:
            self.grams = {t[i:i + 4] for t in train_texts for i in range(len(t) - 3)}
            return
        number = np.zeros(int(self.chars[-1]) + 1, np.uint64)
        number[self.chars] = np.arange(len(self.chars), dtype=np.uint64)
        dense = number[codes]  # (N,) each character's number
        keys = dense[:-3] << 48  # (N - 3,) one key per 4-gram, built in place
        keys |= dense[1:-2] << 32
        keys |= dense[2:-1] << 16
        keys |= dense[3:]  # a 4-gram spanning two poems holds "\0", which no asked 4-gram does
        self.grams = _sorted_unique(keys)

    def has_line(self, line: str) -> bool:
        """Whether `line` is a whole line of some training poem."""
        return f"\n{line}\n" in self.line_blob

    def has_gram(self, gram: str) -> bool:
        """Whether the 4 characters `gram` occur in some training poem."""
        if isinstance(self.grams, set):
            return gram in self.grams
        if "\0" in gram:  # the separator between poems, never part of one
            return False
        codes = np.array([ord(ch) for ch in gram], np.uint32)
        at = np.searchsorted(self.chars, codes)
        if (at >= len(self.chars)).any() or (self.chars[np.minimum(at, len(self.chars) - 1)] != codes).any():
            return False
        d = at.astype(np.uint64)
        key = d[0] << 48 | d[1] << 32 | d[2] << 16 | d[3]
        i = np.searchsorted(self.grams, key)
        return bool(i < len(self.grams) and self.grams[i] == key)

    def longest_shared(self, text: str) -> str:
        """The longest substring of text that occurs in some training poem (two pointers)."""
        best, j = "", 0
        for i in range(len(text)):
            j = max(j, i)
            while j < len(text) and text[i:j + 1] in self.blob:
                j += 1
            if j - i > len(best):
                best = text[i:j]
        return best

    def report(self, text: str) -> dict:
        """longest_shared (characters), shared_text, verbatim_lines (share of the poem's lines found
        in training), novel_4grams (share of its 4-grams absent from training)."""
        lines = split_lines(text)
        grams = [text[i:i + 4] for i in range(len(text) - 3)]
        shared = self.longest_shared(text)
        return {"longest_shared": len(shared), "shared_text": shared,
                "verbatim_lines": sum(map(self.has_line, lines)) / len(lines) if lines else 0.0,
                "novel_4grams": sum(not self.has_gram(g) for g in grams) / len(grams) if grams else 1.0}


def summarize(reports: list[dict]) -> dict:
    """Means over poems, and the share of poems with a whole line copied from training."""
    if not reports:
        return {}
    return {"poems": len(reports),
            "mean_longest_shared": float(np.mean([r["longest_shared"] for r in reports])),
            "max_longest_shared": int(max(r["longest_shared"] for r in reports)),
            "mean_verbatim_lines": float(np.mean([r["verbatim_lines"] for r in reports])),
            "poems_with_a_copied_line": float(np.mean([r["verbatim_lines"] > 0 for r in reports])),
            "mean_novel_4grams": float(np.mean([r["novel_4grams"] for r in reports]))}
