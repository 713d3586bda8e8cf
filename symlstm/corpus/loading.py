"""The corpus: loading poems, normalising them, splits, encoding and the HDF5 cache.

Owns everything between files on disk and encoded int32 token arrays (the vocabulary itself is
`vocab.py`, the poem forms `forms.py`). It knows nothing of batches
(`batching.py`) or models. Errors are `CorpusError`s naming the file and the problem.
"""
import glob
import hashlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from symlstm.config import DataConfig
from symlstm.errors import UserError
from symlstm.poetics.forms import form_token, form_tokens, matches_form
from symlstm.vocab import Vocab, unk_rate

CACHE_VERSION = 2  # 2: a ci labelled by another name of a shipped tune takes that tune's form token


class CorpusError(UserError, ValueError):
    """A problem with the corpus files or settings, naming the file and the problem."""


# -- loading --------------------------------------------------------------------------------------
def resolve_paths(pattern: str, root: Path) -> list[Path]:
    """Files named by a path or glob (relative to root); an error when none exist."""
    full = pattern if Path(pattern).is_absolute() else str(root / pattern)
    paths = sorted(Path(p) for p in glob.glob(full)) if any(ch in pattern for ch in "*?[") else [Path(full)]
    paths = [p for p in paths if p.is_file()]
    if not paths:
        what = "glob matches no file" if any(ch in pattern for ch in "*?[") else "file not found"
        hint = "; `make data` writes it" if Path(pattern).parts[:2] == ("data", "full") else ""
        raise CorpusError(f"{full}: {what} (data.path){hint}")
    return paths


def read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise CorpusError(f"{path}: not UTF-8 at byte offset {err.start}") from None


def read_poems(path) -> list[str]:
    """Non-empty lines of a UTF-8 file, one poem each (the poems a user gives to score or check)."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: file not found")
    poems = [line.strip() for line in read_text(path).splitlines() if line.strip()]
    if not poems:
        raise CorpusError(f"{path}: no poems in this file (it is empty)")
    return poems


def load_raw(cfg: DataConfig, root: Path, tunes: dict | None = None) -> list[str]:
    """Poems as read, before normalisation: one per line, per JSON entry, or one whole text. A JSON
    entry's tune (`rhythmic`, a ci's 詞牌) goes into `tunes` (text without whitespace -> tune)."""
    poems = []
    for path in resolve_paths(cfg.path, root):
        text = read_text(path)
        if cfg.format == "lines":
            poems += text.splitlines()
        elif cfg.format == "text":
            poems.append(text)
        else:
            try:
                entries = json.loads(text)
            except json.JSONDecodeError as err:
                raise CorpusError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
            if isinstance(entries, dict):
                entries = [entries]
            if not isinstance(entries, list) or not all(
                    isinstance(e, dict) and isinstance(e.get("paragraphs"), list) for e in entries):
                raise CorpusError(f"{path}: not in the chinese-poetry shape "
                                  "(a list of objects with a 'paragraphs' list)")
            poems += ["".join(str(p) for p in e["paragraphs"]) for e in entries]
            if tunes is not None:
                tunes.update({re.sub(r"\s+", "", "".join(str(p) for p in e["paragraphs"])): str(e["rhythmic"])
                              for e in entries if e.get("rhythmic")})
    return poems


def normalize(poems: list[str], cfg: DataConfig, source: str = "corpus") -> tuple[list[str], dict]:
    """Strip whitespace, drop lost-character marks, length and form filters, deduplicate (first
    kept). Returns the poems and the count each step removed; an empty result names the filter."""
    stream = cfg.format == "text"
    steps = [
        ("empty", lambda p: bool(p)),
        ("drop_marks", lambda p: not any(ch in p for ch in cfg.drop_marks)),
        ("min_length", lambda p: len(p) >= cfg.min_length),
        ("max_length", lambda p: cfg.max_length <= 0 or len(p) <= cfg.max_length),
        ("form", lambda p: stream or matches_form(p, cfg.form)),
    ]
    out = [p.strip() if stream else re.sub(r"\s+", "", p) for p in poems]
    removed = {}
    for name, keep in steps:
        before = len(out)
        out = [p for p in out if keep(p)]
        removed[name] = before - len(out)
        if before and not out:
            setting = "" if name == "empty" else f" (data.{name} = {getattr(cfg, name)!r})"
            raise CorpusError(f"{source}: no poems left after the {name} filter{setting}")
    if not out:
        raise CorpusError(f"{source}: the corpus is empty")
    unique = list(dict.fromkeys(out))
    removed["duplicates"] = len(out) - len(unique)
    return unique, removed


# -- splits ---------------------------------------------------------------------------------------
def split_of(text: str, valid_fraction: float, test_fraction: float) -> str:
    """'train' / 'valid' / 'test' by a hash of the text alone, so adding poems moves none."""
    u = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    if u < test_fraction:
        return "test"
    if u < test_fraction + valid_fraction:
        return "valid"
    return "train"


class Sequences(Sequence):
    """Encoded poems back to back in one int32 array, with their offsets: `seqs[i]` is a view made
    when asked for. The whole corpus (313,776 poems) would otherwise hold an array object per poem
    (≈ 100 bytes of header each) beside its text; this way a split is two arrays."""

    def __init__(self, ids, lengths):
        self.ids = np.ascontiguousarray(ids, dtype=np.int32)  # (sum of lengths,)
        self.lengths = np.asarray(lengths, dtype=np.int64)  # (n,)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)])  # (n + 1,)
        if self.offsets[-1] != len(self.ids):
            raise ValueError(f"lengths add up to {self.offsets[-1]}, not to the {len(self.ids)} ids")

    @classmethod
    def of(cls, seqs) -> "Sequences":
        """From a list of 1-D arrays (or anything with their lengths)."""
        seqs = list(seqs)
        ids = np.concatenate(seqs) if seqs else np.zeros(0, np.int32)
        return cls(ids, [len(s) for s in seqs])

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"sequence {i} of {len(self)}")
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def firsts(self) -> np.ndarray:
        """The first token of every sequence (its <bos> or form token), (n,)."""
        return self.ids[self.offsets[:-1]]

    def subset(self, rows) -> "Sequences":
        """The sequences at `rows` (indices or a bool mask), in that order, as new arrays."""
        rows = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, np.int64)
        if not len(rows):
            return Sequences(np.zeros(0, np.int32), [])
        take = np.concatenate([np.arange(self.offsets[r], self.offsets[r + 1]) for r in rows])
        return Sequences(self.ids[take], self.lengths[rows])


@dataclass
class Corpus:
    vocab: Vocab
    splits: dict  # 'train' / 'valid' / 'test' -> Sequences (<bos> or form token ... <eos>)
    texts: dict  # same keys -> list of str
    stats: dict


def build_corpus(cfg: DataConfig, root: Path) -> Corpus:
    """Load, normalise, split and encode; the vocabulary comes from the training split."""
    tunes = {}
    raw = load_raw(cfg, root, tunes)
    poems, removed = normalize(raw, cfg, source=str(root / cfg.path))
    if cfg.format == "text":  # one stream: contiguous train / valid / test ranges
        text = "".join(poems)
        n = len(text)
        a, b = int(n * (1 - cfg.valid_fraction - cfg.test_fraction)), int(n * (1 - cfg.test_fraction))
        texts = {"train": [text[:a]], "valid": [text[a:b]], "test": [text[b:]]}
    else:
        texts = {"train": [], "valid": [], "test": []}
        for p in poems:
            texts[split_of(p, cfg.valid_fraction, cfg.test_fraction)].append(p)
    if not texts["train"] or not texts["train"][0]:
        raise CorpusError(f"{root / cfg.path}: the training split is empty")
    vocab = Vocab.build(texts["train"], cfg.min_count, form_tokens() if cfg.form_tokens else ())
    splits = {k: Sequences.of(vocab.encode(t, start=vocab.start(form_token(t, tunes.get(t, "")))) for t in v)
              for k, v in texts.items()}
    stats = {"poems": len(poems), "characters": sum(map(len, poems)), "vocab_size": len(vocab),
             "removed": removed, **{f"{k}_poems": len(v) for k, v in texts.items()},
             **{f"{k}_unk_rate": unk_rate(v) for k, v in splits.items()}}
    return Corpus(vocab, splits, texts, stats)


# -- cache ----------------------------------------------------------------------------------------
def cache_key(cfg: DataConfig, root: Path) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}".encode())
    for key in ("format", "min_count", "drop_marks", "min_length", "max_length", "form",
                "valid_fraction", "test_fraction", "form_tokens"):
        h.update(f"{key}={getattr(cfg, key)!r};".encode())
    for path in resolve_paths(cfg.path, root):
        h.update(path.read_bytes())
    return h.hexdigest()[:20]


def _write_cache(path: Path, corpus: Corpus):
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # one per process: two runs may build the same cache at once
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp, "w") as f:
        f.create_dataset("vocab", data=np.array(corpus.vocab.itos, dtype=object), dtype=h5py.string_dtype())
        f.attrs["stats"] = json.dumps(corpus.stats, ensure_ascii=False)
        for name, seqs in corpus.splits.items():
            g = f.create_group(name)
            g.create_dataset("ids", data=seqs.ids)
            g.create_dataset("lengths", data=seqs.lengths)
            g.create_dataset("texts", data=np.array(corpus.texts[name], dtype=object), dtype=h5py.string_dtype())
    tmp.replace(path)


def _read_cache(path: Path) -> Corpus:
    with h5py.File(path, "r") as f:
        vocab = Vocab([s.decode("utf-8") for s in f["vocab"][()]])
        splits, texts = {}, {}
        for name in ("train", "valid", "test"):
            splits[name] = Sequences(f[name]["ids"][()], f[name]["lengths"][()])
            texts[name] = [s.decode("utf-8") for s in f[name]["texts"][()]]
        return Corpus(vocab, splits, texts, json.loads(f.attrs["stats"]))


def load_corpus(cfg: DataConfig, root: Path, cache_dir: Path | None = None, warn=print) -> Corpus:
    """The corpus, from the HDF5 cache when its key (sources' bytes and settings) matches."""
    root = Path(root)
    if not cfg.cache:
        return build_corpus(cfg, root)
    cache_dir = cache_dir or root / "data" / "cache"
    path = Path(cache_dir) / f"corpus-{cache_key(cfg, root)}.h5"
    if path.exists():
        try:
            corpus = _read_cache(path)
            corpus.stats["cache"] = "hit"
            return corpus
        except Exception as err:  # any damage means rebuild, never trust
            warn(f"warning: {path}: corrupt corpus cache ({type(err).__name__}); rebuilding")
    corpus = build_corpus(cfg, root)
    try:
        _write_cache(path, corpus)
    except OSError as err:
        warn(f"warning: {path}: could not write the corpus cache ({err})")
    corpus.stats["cache"] = "built"
    return corpus
