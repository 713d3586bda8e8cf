"""`train.init_from`: a run that starts from another run's checkpoint, whose corpus had another
vocabulary (pretraining on the full corpus, then the quatrains)."""
import h5py
import numpy as np
import pytest

from symlstm.config import ModelConfig, load_config
from symlstm.core.model import carry_over, init_params, param_shapes
from symlstm.errors import InputError
from symlstm.run.train import TrainingError, train
from symlstm.vocab import SPECIALS

from conftest import QUATRAINS, tiny_raw


def quiet(*_):
    pass


def test_carry_over_takes_each_tokens_row_by_hand_indexing():
    cfg = ModelConfig(embedding=3, hidden=4)  # untied: embedding (V, 3), output/W (4, V), output/b (V,)
    saved_itos, itos = [*SPECIALS, "a", "b", "c"], [*SPECIALS, "b", "c", "d", "e"]
    rng = np.random.default_rng(0)
    saved = {k: rng.normal(size=s) for k, s in param_shapes(len(saved_itos), cfg).items()}
    fresh = {k: rng.normal(size=s).astype("float32") for k, s in param_shapes(len(itos), cfg).items()}
    out, carried = carry_over(saved, saved_itos, fresh, itos)
    assert carried == 6  # the four specials, b and c
    rows = [0, 1, 2, 3, 5, 6]  # b and c sit at 5 and 6 there, at 4 and 5 here
    np.testing.assert_array_equal(out["embedding"][:6], saved["embedding"][rows].astype("float32"))
    np.testing.assert_array_equal(out["embedding"][6:], fresh["embedding"][6:])  # d and e: never seen there
    np.testing.assert_array_equal(out["output/W"][:, :6], saved["output/W"][:, rows].astype("float32"))
    np.testing.assert_array_equal(out["output/W"][:, 6:], fresh["output/W"][:, 6:])
    np.testing.assert_array_equal(out["output/b"], np.r_[saved["output/b"][rows], fresh["output/b"][6:]].astype("float32"))
    for k in ("layer0/W", "layer0/U", "layer0/b"):
        np.testing.assert_array_equal(out[k], saved[k].astype("float32"))
    assert all(v.dtype == np.float32 for v in out.values())


def _other_corpus(tmp_path):
    """A second project root whose poems (quatrains 400-799) give another vocabulary."""
    root = tmp_path / "other"
    (root / "data").mkdir(parents=True)
    (root / "data" / "small.txt").write_text("\n".join(QUATRAINS[400:800]) + "\n", encoding="utf-8")
    return root


def _read(path):
    with h5py.File(path, "r") as f:
        return [s.decode() for s in f["vocab"][()]], {k: f["params"][k][()] for k in ("embedding", "output/b",
                                                                                     "layer0/U")}


@pytest.mark.parametrize("tie", [True, False])
def test_a_run_starts_from_another_corpus_checkpoint(small_corpus, tmp_path, tie):
    raw = tiny_raw(max_steps=6, ema=0.5)
    raw["model"]["tie_weights"] = tie
    train(load_config(raw=raw), tmp_path / "a", small_corpus, log=quiet, progress=False)
    a = tmp_path / "a" / "best.h5"
    raw = tiny_raw(max_steps=1, eval_every=1, learning_rate=1e-12, init_from=str(a))  # one step that moves nothing
    raw["model"]["tie_weights"] = tie
    cfg = load_config(raw=raw)
    lines = []
    train(cfg, tmp_path / "b", _other_corpus(tmp_path), log=lines.append, progress=False)
    (old_vocab, old), (vocab, new) = _read(a), _read(tmp_path / "b" / "last.h5")
    assert old_vocab != vocab
    fresh = init_params(len(vocab), cfg.model, cfg.train.seed)
    where = {s: i for i, s in enumerate(old_vocab)}
    both = [i for i, s in enumerate(vocab) if s in where]
    assert 4 < len(both) < len(vocab)
    assert any(f"{len(both)} of the {len(vocab)} tokens take its rows" in line for line in lines)
    for i, s in enumerate(vocab):
        want = (old["embedding"][where[s]], old["output/b"][where[s]]) if s in where else \
            (fresh["embedding"][i], fresh["output/b"][i])
        np.testing.assert_allclose(new["embedding"][i], want[0], atol=1e-9)
        np.testing.assert_allclose(new["output/b"][i], want[1], atol=1e-9)
    np.testing.assert_allclose(new["layer0/U"], old["layer0/U"], atol=1e-9)


def test_a_checkpoint_that_cannot_start_the_run_is_refused_before_anything_is_replaced(small_corpus, tmp_path):
    train(load_config(raw=tiny_raw(max_steps=3)), tmp_path / "a", small_corpus, log=quiet, progress=False)
    before = (tmp_path / "a" / "metrics.csv").read_bytes()
    missing = load_config(raw=tiny_raw(init_from="runs/none/best.h5"))
    with pytest.raises(TrainingError, match=r"runs/none/best.h5 \(train.init_from\): checkpoint not found; train"):
        train(missing, tmp_path / "a", small_corpus, overwrite=True, log=quiet, progress=False)
    wider = tiny_raw(init_from=str(tmp_path / "a" / "best.h5"))
    wider["model"]["hidden"] = 24
    with pytest.raises(TrainingError, match=r"\(train.init_from\): its parameter layer0/U is 16×64, this config's "
                                            r"24×96; model.\* must be the checkpoint's"):
        train(load_config(raw=wider), tmp_path / "a", small_corpus, overwrite=True, log=quiet, progress=False)
    assert (tmp_path / "a" / "metrics.csv").read_bytes() == before  # the run it would have replaced is whole


def test_the_pytorch_reference_says_it_cannot_start_from_a_checkpoint():
    from symlstm.tools.torch_reference import recipe

    with pytest.raises(InputError, match="train.init_from runs/a/best.h5: the PyTorch reference starts from"):
        recipe(None, load_config(raw=tiny_raw(init_from="runs/a/best.h5")), 30)
