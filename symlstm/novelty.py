"""Memorisation check: how much of a generated poem the training split already holds.

The index is built once from the training poems: the poems joined by newlines (for substring
search, which Python runs in C), the set of their lines and the set of their character 4-grams.
"""
import re

import numpy as np

from .forms import PUNCT, split_lines


class NoveltyIndex:
    def __init__(self, train_texts: list[str]):
        self.blob = "\n" + "\n".join(train_texts) + "\n"
        self.lines = {l for t in train_texts for l in re.split(f"[{PUNCT}\n]", t) if l}
        self.grams = {t[i:i + 4] for t in train_texts for i in range(len(t) - 3)}

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
                "verbatim_lines": sum(l in self.lines for l in lines) / len(lines) if lines else 0.0,
                "novel_4grams": sum(g not in self.grams for g in grams) / len(grams) if grams else 1.0}


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
