import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """The first 400 shipped quatrains, as a project root holding data/small.txt."""
    root = tmp_path_factory.mktemp("project")
    (root / "data").mkdir()
    lines = (ROOT / "data" / "tang_quatrains.txt").read_text(encoding="utf-8").splitlines()[:400]
    (root / "data" / "small.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def tiny_raw(**train):
    """A config dict for a tiny, fast model on small_corpus."""
    return {"name": "t", "model": {"embedding": 8, "hidden": 16, "dropout": 0.1},
            "data": {"path": "data/small.txt", "batch_size": 16, "valid_fraction": 0.1, "test_fraction": 0.1},
            "train": {"max_steps": 6, "eval_every": 3, "num_samples": 1, **train}}
