"""Training through oneDNN's fused LSTM (`model.onednn_lstm`, `core/onednn_lstm.py`), where `make
onednn` built it: where the rewrite fires, and that the rewritten training graph computes the plain
graph's loss and gradients on poem batches (padding at the ends of rows), the loss also against the
NumPy reference. The layer itself against the reference's central differences: tests/backend."""
import dataclasses

import numpy as np
import pytensor
import pytest

from symlstm import TrainConfig, compile_model, init_params
from symlstm.backend import onednn
from symlstm.backend.runtime import get_mode
from symlstm.config import load_config
from symlstm.core import model as M
from symlstm.core import onednn_lstm, paths
from symlstm.core import precision as precision_
from symlstm.errors import InputError
from symlstm.tools.bench import SHAPES
from symlstm.tools.gradcheck import BF16_TOLERANCE

from conftest import ROOT
from reference import nll_sum
from test_lstm_layer import RECIPE, B, T, V, _graph, _values

pytestmark = [pytest.mark.skipif(not onednn.available()[0], reason=onednn.available()[1] or "available"),
              pytest.mark.isa]  # also run capped to AVX2 (make test's second leg)
BF16 = pytest.mark.skipif(not onednn.runs("lstm", True)[0], reason=onednn.runs("lstm", True)[1] or "-")
PRECISIONS = ["float32", pytest.param("bf16", marks=BF16)]  # bf16 where oneDNN makes a bf16 LSTM here


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_rewrite_fires_on_poems_training_graph_and_the_bench_shapes(precision):
    cfg = dataclasses.replace(load_config(ROOT / "configs" / "poems.yaml", RECIPE).model, precision=precision,
                              onednn_lstm="on")
    _, plain, rewritten = _graph(cfg, 40, 64, 32)
    assert (onednn_lstm.count(plain), onednn_lstm.count(rewritten)) == (0, 2)
    for s in SHAPES.values():
        shape_cfg = dataclasses.replace(cfg, embedding=s["E"], hidden=s["H"], num_layers=s["L"], tie_weights=False)
        assert onednn_lstm.count(_graph(shape_cfg, 40, s["T"], s["B"])[2]) == s["L"]


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_primitive_computes_the_plain_graphs_loss_and_gradients(precision):
    """Two layers, tied, every dropout, zero initial states (as poem batches start), rows padded at
    their ends: the loss, every parameter's gradient and an unpadded row's hT, cT through oneDNN equal
    the plain graph's (float32 to 1e-5; bf16 at the gradient check's bf16 tolerance), and the loss
    the NumPy reference's."""
    cfg = load_config(overrides=RECIPE + ["model.num_layers=2", "model.embedding=4", "model.hidden=6",
                                          "model.init_scale=0.5", f"model.precision={precision}"]).model
    results = []
    for on in (False, True):  # through oneDNN: its LSTM, and its matmul for the bf16 output layer
        c = dataclasses.replace(cfg, onednn_lstm="on" if on else "off", onednn_matmul="on" if on else "off")
        inputs, _, (mean, hT, cT) = _graph(c, V, T, B)
        params = inputs[:len(M.param_shapes(V, c))]
        fn = pytensor.function(inputs, [mean] + pytensor.grad(mean, params) + [hT[:, 0], cT[:, 0]],
                               mode=get_mode("jax"))
        # tied through a projection: two products forward, four in their gradients, on oneDNN in bf16
        assert precision_.onednn_count(fn.maker.fgraph.outputs) == 6 * (on and precision == "bf16")
        values, data = _values(c)
        data[3], data[4] = np.zeros_like(data[3]), np.zeros_like(data[4])
        results.append(fn(*values.values(), *data))
    tolerance = 1e-5 if precision == "float32" else BF16_TOLERANCE
    for plain, through in zip(*results):  # the loss, the gradients, and the final states of row 0 (unpadded)
        assert np.abs(through - plain).max() <= tolerance * max(np.abs(plain).max(), 1e-3)
    if precision == "float32":
        x, y, mask, h0, c0, *drop = data
        total, count, _, _ = nll_sum(values, "lstm", 2, x, y, mask, h0, c0,
                                     drop=dict(zip(M.mask_shapes(cfg, V, T, B), drop)))
        np.testing.assert_allclose(results[1][0], total / count, rtol=1e-5)


@BF16
@pytest.mark.skipif(not onednn.runs("matmul", True)[0], reason=onednn.runs("matmul", True)[1] or "-")
def test_the_matmul_rewrite_takes_the_bf16_products_over_all_steps():
    """`model.onednn_matmul` puts on oneDNN's matmul every bf16 product outside the recurrence:
    poems.yaml's tied output layer (the projection and the product with the embedding), a bench
    shape's output layer, and each layer's input projection and h0·U too where the plain scan keeps
    them; none in
    float32 (no Bf16Dot), none with the key off; `auto` where built and the products are bf16."""
    cfg = load_config(ROOT / "configs" / "poems.yaml", RECIPE + ["model.precision=bf16", "model.onednn_lstm=on",
                                                                 "model.onednn_matmul=on"]).model
    count = lambda c, vocab=40, T=64, B=32: precision_.onednn_count(_graph(c, vocab, T, B)[2])  # noqa: E731
    assert count(cfg) == 2
    assert count(dataclasses.replace(cfg, onednn_matmul="off")) == count(dataclasses.replace(cfg, precision="float32")) == 0
    for s in SHAPES.values():
        shape_cfg = dataclasses.replace(cfg, embedding=s["E"], hidden=s["H"], num_layers=s["L"], tie_weights=False)
        assert count(shape_cfg, 40, s["T"], s["B"]) == 1
        # the plain scan: also each layer's input projection and its first recurrent term h0·U
        assert count(dataclasses.replace(shape_cfg, onednn_lstm="off"), 40, s["T"], s["B"]) == 1 + 2 * s["L"]
    auto = dataclasses.replace(cfg, onednn_matmul="auto")
    assert paths.decide(auto).onednn_matmul and not paths.decide(dataclasses.replace(auto, precision="float32")).onednn_matmul


def test_a_mask_with_a_hole_is_refused():
    cfg = load_config(overrides=["model.embedding=4", "model.hidden=6", "model.onednn_lstm=true"]).model
    compiled = compile_model(init_params(V, cfg, 0), cfg, TrainConfig())
    x = np.zeros((T, B), np.int32)
    mask = np.ones((T, B), np.float32)
    mask[1, 0] = 0  # a gap inside row 0
    with pytest.raises(InputError, match="rows padded at their end only"):
        compiled.train_step(x, x, mask, *compiled.zero_state(B))


@BF16
def test_the_gradient_checks_bf16_rows_go_through_onednn(monkeypatch):
    """`make gradcheck` adds the plain 2-layer LSTM and the tied one with every dropout through oneDNN
    (its LSTM and its matmul), bf16 only; their gradients against the float64 reference of bf16
    pass, computed by the primitives (counted as the check builds its graphs)."""
    from symlstm.tools import gradcheck

    built, products = [], []
    real, real_products = onednn_lstm.substitute, precision_.with_onednn
    monkeypatch.setattr(onednn_lstm, "substitute", lambda outs: built.append(outs) or real(outs))
    monkeypatch.setattr(precision_, "with_onednn",
                        lambda outs: products.append(precision_.onednn_count(real_products(outs))) or real_products(outs))
    models, skipped = gradcheck.onednn_models()
    assert skipped == "" and [gradcheck.model_id(m) for m in models] == ["lstm-L2-H5-onednn", "lstm-L2-H5-tied-dropout-onednn"]
    for m in models:
        rows = gradcheck.bf16_gradient_check(m)
        assert rows and all(r["passed"] for r in rows), rows
    assert len(built) == 2 and all(onednn_lstm.count(real(outs)) == 2 for outs in built)
    assert products == [1, 2]  # and the output layer on oneDNN's matmul: untied; tied through a projection
