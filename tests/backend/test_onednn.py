"""oneDNN's fused LSTM layer through XLA FFI (`backend/onednn`), where `make onednn` built it.

Checked against the NumPy reference (its forward, and central differences of it in float64 for
the gradient), not against the project's own graphs; bf16 against the same reference with its
products' factors rounded to bf16, at the gradient check's bf16 tolerance.
"""
import numpy as np
import pytest

from symlstm.backend import onednn
from symlstm.tools.gradcheck import BF16_TOLERANCE

from reference import cell_step

needs_onednn = pytest.mark.skipif(not onednn.available()[0], reason=onednn.available()[1] or "available")
pytestmark = pytest.mark.isa  # also run capped to AVX2 (make test's second leg)


def precisions(primitive):
    """float32, and bf16 where oneDNN makes this primitive in bf16 here (not without AVX-512)."""
    ok, why = onednn.runs(primitive, True)
    return ["float32", pytest.param("bf16", marks=pytest.mark.skipif(not ok, reason=why))]

T, B, E, H = 5, 3, 4, 6


def bf16(a):
    """Round to the nearest bf16 (ties to even), kept in float64."""
    a32 = np.asarray(a, np.float32)
    bits = a32.view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32).astype(np.float64)


def reference(x, W, U, b, h0, c0, mm=np.matmul, mask=None):
    """hs, hT, cT of one layer by the NumPy reference, float64; padded steps keep the state."""
    h, c, hs = h0, c0, []
    for t in range(len(x)):
        hn, cn = cell_step("lstm", x[t], h, c, W, U, b, mm)
        m = 1.0 if mask is None else mask[t][:, None]
        h, c = m * hn + (1 - m) * h, m * cn + (1 - m) * c
        hs.append(hn if mask is None else m * hn)
    return np.stack(hs), h, c


def draw(seed=0):
    rng = np.random.default_rng(seed)
    shapes = [(T, B, E), (E, 4 * H), (H, 4 * H), (4 * H,), (B, H), (B, H)]
    return [rng.normal(size=s) * k for s, k in zip(shapes, (1, 0.4, 0.4, 0.2, 0.5, 0.5))]


def loss_weights(seed=1):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in ((T, B, H), (B, H), (B, H))]


@needs_onednn
@pytest.mark.parametrize("precision", precisions("lstm"))
def test_forward_matches_the_reference(precision):
    args = draw()
    if precision == "float32":
        got = onednn.lstm_layer(*[np.float32(a) for a in args])
        for g, want in zip(got, reference(*args)):
            np.testing.assert_allclose(np.asarray(g), want, atol=2e-6)
        return
    rounded = onednn.lstm_layer(*[np.float32(a) for a in args], bf16=True)
    want = reference(bf16(args[0]), *args[1:], mm=lambda a, w: bf16(a) @ bf16(w))  # bf16 factors, exact sums
    for g, w in zip(rounded, want):
        assert np.abs(np.asarray(g) - w).max() < 2e-2 * np.abs(w).max()


@needs_onednn
@pytest.mark.parametrize("precision", precisions("lstm"))
def test_gradient_matches_central_differences_of_the_reference(precision):
    """∂ of Σ w·(hs, hT, cT) with respect to x, W, U, b, h0, c0 by oneDNN's backward, against
    central differences of the float64 reference; bf16 (whose rounding has no derivative to take
    differences of) at the gradient check's bf16 tolerance."""
    import jax

    args, weights = draw(), loss_weights()

    def loss(*a):
        return sum((o * w).sum() for o, w in zip(reference(*a), weights))

    def onednn_loss(*a):
        out = onednn.lstm_layer(*a, bf16=precision == "bf16")
        return sum((o * w).sum() for o, w in zip(out, weights))

    grads = jax.grad(onednn_loss, argnums=range(6))(*[np.float32(a) for a in args])
    eps = 1e-6
    for k, (a, g) in enumerate(zip(args, grads)):
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            up, down = [v.copy() for v in args], [v.copy() for v in args]
            up[k][i] += eps
            down[k][i] -= eps
            numeric[i] = (loss(*up) - loss(*down)) / (2 * eps)
        error = np.abs(np.asarray(g) - numeric).max() / max(np.abs(numeric).max(), 1e-3)
        assert error < (1e-5 if precision == "float32" else BF16_TOLERANCE), (k, error)


@needs_onednn
def test_padding_at_the_end_leaves_the_real_steps_alone():
    """oneDNN's LSTM has no mask: rows padded at their end give the masked reference's outputs at
    every real step (what a masked loss reads), while their hT, cT run on through the padding."""
    args = draw(2)
    mask = np.ones((T, B))
    mask[3:, 0] = mask[4:, 1] = 0  # rows 0 and 1 end early; row 2 is full
    hs, hT, cT = (np.asarray(v) for v in onednn.lstm_layer(*[np.float32(a) for a in args]))
    want_hs, want_hT, want_cT = reference(*args, mask=mask)
    np.testing.assert_allclose(hs * mask[:, :, None], want_hs, atol=2e-6)
    np.testing.assert_allclose(hT[2], want_hT[2], atol=2e-6)  # the full row's final state agrees
    assert np.abs(hT[:2] - want_hT[:2]).max() > 1e-3  # the padded rows' do not


def test_the_thread_count_comes_from_the_environment_or_the_cores(monkeypatch):
    import os

    from symlstm.errors import UserError

    monkeypatch.delenv("SYMLSTM_ONEDNN_THREADS", raising=False)
    assert onednn.threads() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("SYMLSTM_ONEDNN_THREADS", "1")
    assert onednn.threads() == 1
    for bad in ("two", "0", "-1"):
        monkeypatch.setenv("SYMLSTM_ONEDNN_THREADS", bad)
        with pytest.raises(UserError, match=f"SYMLSTM_ONEDNN_THREADS='{bad}': expected a number of threads"):
            onednn.threads()


def test_building_without_headers_or_compiler_says_what_is_missing(tmp_path, monkeypatch):
    from symlstm.errors import UserError

    monkeypatch.setattr(onednn, "_prefix_dirs", lambda: (tmp_path / "include", tmp_path / "lib"))
    with pytest.raises(UserError, match=r"include/oneapi/dnnl/dnnl.hpp: oneDNN's headers are not installed"):
        onednn.build()
    (tmp_path / "include" / "oneapi" / "dnnl").mkdir(parents=True)
    (tmp_path / "include" / "oneapi" / "dnnl" / "dnnl.hpp").write_text("")
    monkeypatch.setattr(onednn.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="g\\+\\+: not found; oneDNN's LSTM needs a C\\+\\+ compiler"):
        onednn.build()


@needs_onednn
def test_the_library_runs_the_onednn_it_was_compiled_against():
    """`version()` asks the loaded libdnnl; its headers' dnnl_version.h says what the FFI library
    was built for: they agree unless the loader found another libdnnl.so.3."""
    import re

    include, _ = onednn._prefix_dirs()
    text = (include / "oneapi" / "dnnl" / "dnnl_version.h").read_text()
    want = ".".join(re.search(rf"#define DNNL_VERSION_{k} (\d+)", text).group(1) for k in ("MAJOR", "MINOR", "PATCH"))
    assert re.fullmatch(rf"{re.escape(want)} \(commit [0-9a-f]{{7}}\)", onednn.version()), onednn.version()



@needs_onednn
@pytest.mark.parametrize("precision", precisions("matmul"))
@pytest.mark.parametrize("ta,tb", [(False, False), (False, True), (True, False), (True, True)])
def test_matmul_reads_either_layout_in_float32_and_bf16(ta, tb, precision):
    """op(a)·op(b) by oneDNN's matmul against NumPy in float64: float32 factors to 1e-5; bf16 factors
    (rounded here) exactly multiplied and summed in float32."""
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    M, K, N = 37, 300, 53
    a = rng.normal(size=(K, M) if ta else (M, K)).astype(np.float32)
    b = rng.normal(size=(N, K) if tb else (K, N)).astype(np.float32)
    op = lambda v, t: v.T if t else v  # noqa: E731
    if precision == "float32":
        want = op(a.astype(np.float64), ta) @ op(b.astype(np.float64), tb)
        got = np.asarray(onednn.matmul(jnp.asarray(a), jnp.asarray(b), ta, tb))
        assert got.dtype == np.float32 and np.abs(got - want).max() < 1e-5 * np.abs(want).max()
        return
    want = op(bf16(a), ta) @ op(bf16(b), tb)
    got = np.asarray(onednn.matmul(jnp.asarray(a, jnp.bfloat16), jnp.asarray(b, jnp.bfloat16), ta, tb))
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    assert np.abs(got - op(a, ta).astype(np.float64) @ op(b, tb)).max() > 1e-4 * np.abs(want).max()  # and it is bf16


def test_asking_for_onednn_where_it_is_not_built_names_the_key(monkeypatch):
    from symlstm.config import load_config
    from symlstm.core import compiled
    from symlstm.errors import InputError

    monkeypatch.setattr(onednn, "available", lambda: (False, "_lstm_ffi.so is not built (make onednn)"))
    for key in ("onednn_lstm", "onednn_matmul"):
        cfg = load_config(overrides=[f"model.{key}=on", "model.precision=bf16"]).model
        with pytest.raises(InputError, match=f"model.{key}: oneDNN is not available here: _lstm_ffi.so is not built"):
            compiled.differentiable(cfg, [])
