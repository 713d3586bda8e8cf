"""The C and Numba backends: a float64 gradient check and the same numbers as JAX.

The default backend is JAX; these two must keep working (`--backend c|numba`). On both, the fused
cross-entropy Ops of xent.py run their NumPy `perform` (they have no C or Numba code), which the
JAX backend never calls: the counter below proves that it ran.
"""
import numpy as np
import pytest

from symlstm import ModelConfig, compile_model, init_params
from symlstm.core import xent
from symlstm.tools.gradcheck import TOLERANCE, gradient_check

from reference import nll_sum

E, H, V, B, T = 4, 5, 6, 2, 3


@pytest.fixture
def performs(monkeypatch):
    """Count the calls of the NumPy perform of both cross-entropy Ops."""
    calls = {"forward": 0, "backward": 0}
    for name, op in (("forward", xent.SoftmaxCrossEntropy), ("backward", xent.SoftmaxCrossEntropyGrad)):
        real = op.perform

        def counted(self, node, inputs, outputs, real=real, name=name):
            calls[name] += 1
            return real(self, node, inputs, outputs)
        monkeypatch.setattr(op, "perform", counted)
    return calls


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["c", "numba"])
def test_gradient_check_passes(backend, performs):
    cfg = ModelConfig(cell="lstm", embedding=E, hidden=H, num_layers=1, dtype="float64", backend=backend,
                      init_scale=0.5)
    rows = gradient_check(cfg)
    assert len(rows) == 6 and all(r["entries"] > 0 for r in rows)
    assert max(r["max_rel_error"] for r in rows) <= TOLERANCE, rows
    assert performs["forward"] > 0 and performs["backward"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["c", "numba"])
def test_forward_and_step_equal_jax_and_numpy(backend):
    rng = np.random.default_rng(0)
    x = rng.integers(0, V, (T, B)).astype(np.int32)
    y = rng.integers(0, V, (T, B)).astype(np.int32)
    mask = np.ones((T, B))
    mask[-1, 1] = 0
    models = {}
    for name in ("jax", backend):
        cfg = ModelConfig(embedding=E, hidden=H, num_layers=2, dtype="float64", backend=name, init_scale=0.5)
        models[name] = compile_model(init_params(V, cfg, 1), cfg)
    params = models["jax"].get_params()
    h0 = rng.normal(size=(2, B, H))
    c0 = rng.normal(size=(2, B, H))
    ref_total, _, ref_h, ref_c = nll_sum(params, "lstm", 2, x, y, mask, h0, c0)
    got = {name: m.evaluate(x, y, mask, h0, c0) for name, m in models.items()}
    for name, (total, count, hT, cT) in got.items():
        assert total == pytest.approx(ref_total, rel=1e-12) and count == mask.sum(), name
        np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(cT, ref_c, rtol=1e-12, atol=1e-14)
    steps = {name: m.step(x[0], h0, c0) for name, m in models.items()}
    for a, b in zip(steps["jax"], steps[backend]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
