"""bf16 mixed precision (`model.precision: bf16`, symlstm/precision.py): the Op against NumPy on
bf16-rounded inputs, the model's gradients against the float64 straight-through reference."""
import dataclasses

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from symlstm.backend import onednn as onednn_backend
from symlstm.backend.runtime import get_mode
from symlstm.config import ConfigError, ModelConfig, load_config
from symlstm.core.precision import Bf16Dot, round_bf16
from symlstm.tools.gradcheck import BF16_TOLERANCE, bf16_gradient_check, model_id, standard_models


# oneDNN's bf16 matmul: where make onednn built it and oneDNN has bf16 kernels here (not without AVX-512)
needs_onednn = pytest.mark.skipif(not onednn_backend.runs("matmul", True)[0],
                                  reason=onednn_backend.runs("matmul", True)[1] or "-")
pytestmark = pytest.mark.isa  # also run capped to AVX2 (make test's second leg)


def _bf16_by_bits(x):
    """An independent rounding: the nearest bf16 found by scanning the two neighbours."""
    x = np.asarray(x, np.float32)
    bits = x.view(np.uint32)
    down = (bits & 0xFFFF0000).view(np.float32)
    up = ((bits & 0xFFFF0000) + 0x10000).astype(np.uint32).view(np.float32)
    d_down, d_up = np.abs(x - down), np.abs(up - x)
    even_down = ((bits >> 16) & 1) == 0
    return np.where((d_down < d_up) | ((d_down == d_up) & even_down), down, up)


def test_round_bf16_is_round_to_nearest_even():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=10000), rng.normal(size=1000) * 1e-30, rng.normal(size=1000) * 1e30])
    x = x.astype(np.float32)
    ties = (np.arange(1, 200, dtype=np.uint32) << 16 | 0x8000).view(np.float32)  # exactly halfway
    for v in (x, -x, ties, -ties):
        assert np.array_equal(round_bf16(v), _bf16_by_bits(v))
    assert (round_bf16(x).view(np.uint32) & 0xFFFF).max() == 0  # 8 bits of mantissa left
    assert np.abs(round_bf16(x) - x).max() > 0


@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
# XLA's bf16 dot; oneDNN's matmul (model.onednn_matmul, where make onednn built it); perform (C, Numba)
@pytest.mark.parametrize("mode", ["jax", pytest.param("onednn", marks=needs_onednn), "FAST_COMPILE"])
def test_bf16_dot_and_its_gradient_equal_float64_products_of_rounded_factors(ta, tb, mode):
    rng = np.random.default_rng(1)
    M, K, N = 37, 300, 53
    A = rng.normal(size=(K, M) if ta else (M, K)).astype(np.float32)
    B = rng.normal(size=(N, K) if tb else (K, N)).astype(np.float32)
    G = rng.normal(size=(M, N)).astype(np.float32)
    a, b = pt.matrix("a", dtype="float32"), pt.matrix("b", dtype="float32")
    out = Bf16Dot(ta, tb, onednn=mode == "onednn")(a, b)
    ga, gb = pytensor.grad((out * G).sum(), [a, b])
    fn = pytensor.function([a, b], [out, ga, gb], mode=mode if mode == "FAST_COMPILE" else get_mode("jax"))
    # the gradient's products inherit the flag: three products, each on oneDNN or none
    assert [n.op.onednn for n in fn.maker.fgraph.toposort() if isinstance(n.op, Bf16Dot)] == [mode == "onednn"] * 3
    got = fn(A, B)
    # float64 NumPy on the bf16-rounded factors (rounded by the independent bit scan above)
    Ar, Br = _bf16_by_bits(A).astype(np.float64), _bf16_by_bits(B).astype(np.float64)
    opA, opB = (Ar.T if ta else Ar), (Br.T if tb else Br)
    want = [opA @ opB, (G @ opB.T).T if ta else G @ opB.T, (opA.T @ G).T if tb else opA.T @ G]
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape
        # the forward sums exact products in float32; the gradient also rounds G to bf16
        assert np.abs(g - w).max() / np.abs(w).max() < BF16_TOLERANCE
    assert np.abs(got[0] - want[0]).max() / np.abs(want[0]).max() < 1e-5
    plain = A.astype(np.float64).T if ta else A.astype(np.float64)
    # and it is bf16: the exact float32 product is measurably elsewhere
    assert np.abs(got[0] - plain @ (B.T if tb else B)).max() / np.abs(want[0]).max() > 1e-4


@pytest.mark.parametrize("onednn", [False, pytest.param(True, marks=needs_onednn)])
def test_bf16_dot_of_a_3d_input_and_its_gradient(onednn):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(4, 3, 16)).astype(np.float32)
    W = rng.normal(size=(16, 5)).astype(np.float32)
    x, w = pt.tensor3("x", dtype="float32"), pt.matrix("w", dtype="float32")
    out = Bf16Dot(onednn=onednn)(x, w)
    gx, gw = pytensor.grad(out.sum(), [x, w])
    o, dx, dw = pytensor.function([x, w], [out, gx, gw], mode=get_mode("jax"))(X, W)
    Xr, Wr = round_bf16(X).astype(np.float64), round_bf16(W).astype(np.float64)
    np.testing.assert_allclose(o, Xr @ Wr, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, np.broadcast_to(Wr.sum(1), X.shape), rtol=BF16_TOLERANCE)
    np.testing.assert_allclose(dw, np.broadcast_to(Xr.sum((0, 1))[:, None], W.shape), rtol=BF16_TOLERANCE)


@pytest.mark.parametrize("cfg", [c for c in standard_models() if c.cell == "lstm"] +
                         [dataclasses.replace(standard_models()[2], num_layers=2)],
                         ids=model_id)
def test_bf16_model_gradients_match_the_float64_straight_through_reference(cfg):
    rows = bf16_gradient_check(cfg)
    names = {r["parameter"] for r in rows}
    assert names >= {"embedding", "output/b", "layer0/U"} and ("output/W" in names) != cfg.tie_weights
    for r in rows:
        assert r["passed"], r


def test_bf16_gradient_check_detects_a_wrong_gradient(monkeypatch):
    real = pytensor.grad
    monkeypatch.setattr(pytensor, "grad",
                        lambda cost, wrt: [g * (1.05 if cost.dtype == "float32" else 1.0) for g in real(cost, wrt)])
    rows = bf16_gradient_check(standard_models()[0])
    assert not any(r["passed"] for r in rows), rows


def test_bf16_needs_float32_master_parameters():
    with pytest.raises(ConfigError, match="model.precision bf16 needs model.dtype float32"):
        load_config(raw={"model": {"precision": "bf16", "dtype": "float64"}})
    with pytest.raises(ConfigError, match="'fp8' is not one of float32, bf16, auto"):
        load_config(raw={"model": {"precision": "fp8"}})
    assert load_config(raw={"model": {"precision": "bf16"}}).model == ModelConfig(precision="bf16")


def test_bf16_training_loss_equals_the_numpy_reference_with_rounded_factors():
    """The bf16 training graph's loss (lr 0: nothing moves) against tests/reference.py in float64
    whose every product rounds its factors to bf16 first; and it is not the float32 loss."""
    from symlstm import compile_model, init_params
    from symlstm.config import TrainConfig

    from reference import nll_sum

    def mm(a, b):  # the bf16 product, in float64 sums
        return round_bf16(a.astype(np.float32)).astype(np.float64) @ round_bf16(b.astype(np.float32)).astype(np.float64)

    rng = np.random.default_rng(4)
    V, T, B = 30, 7, 4
    for cell, layers in (("lstm", 2), ("gru", 1)):
        cfg = ModelConfig(cell=cell, embedding=12, hidden=20, num_layers=layers, precision="bf16", init_scale=0.5)
        params = init_params(V, cfg, 1)
        m = compile_model(params, cfg, TrainConfig(optimizer="sgd"))
        x = rng.integers(0, V, (T, B)).astype(np.int32)
        y = rng.integers(0, V, (T, B)).astype(np.int32)
        mask = np.ones((T, B), np.float32)
        mask[5:, 2:] = 0
        h0, c0 = (rng.normal(0, 0.5, (layers, B, 20)).astype(np.float32) for _ in range(2))
        loss = m.train_step(x, y, mask, h0, c0, lr=0.0)[0]
        p64 = {k: v.astype(np.float64) for k, v in params.items()}
        total, count, _, _ = nll_sum(p64, cell, layers, x, y, mask, h0, c0, mm)
        plain, _, _, _ = nll_sum(p64, cell, layers, x, y, mask, h0, c0)
        assert loss == pytest.approx(total / count, rel=2e-6), cell
        assert abs(loss - plain / count) > 5 * abs(loss - total / count), cell  # bf16, not float32
