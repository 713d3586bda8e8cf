"""The LSTM layer Op (`core/lstm_layer.py`): where the rewrite fires, what the graph then computes
(the plain graph and the NumPy reference), and that its backward is the hand-written one. Its
gradient against central differences and against the float64 reference of bf16 is in the gradient
check's models (`standard_models`, the `-op` ids)."""
import dataclasses

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from symlstm import ModelConfig, TrainConfig
from symlstm.backend.runtime import get_mode
from symlstm.config import load_config
from symlstm.core import lstm_layer, optim
from symlstm.core import model as M
from symlstm.core.compiled import batch_inputs, differentiable, draw_masks, mask_inputs, train_graph
from symlstm.tools.bench import SHAPES

from conftest import ROOT
from reference import nll_sum

pytestmark = pytest.mark.isa  # also run capped to AVX2 (make test's second leg)
V, T, B = 7, 5, 3
RECIPE = ["model.tie_weights=true", "model.dropout=0", "model.dropout_input=0.1", "model.dropout_hidden=0.25",
          "model.dropout_output=0.4", "model.weight_dropout=0.2", "model.dropout_embed=0.1"]


def _graph(cfg, vocab, T, B):
    """The training graph's (loss, hT, cT) on symbolic parameters, before and after `differentiable`."""
    params = {k: pt.tensor(k, dtype=cfg.dtype, shape=s) for k, s in M.param_shapes(vocab, cfg).items()}
    x, y, mask, h0, c0 = batch_inputs(cfg, (T, B))
    masks = mask_inputs(cfg, vocab, (T, B))
    mean, _, _, hT, cT = M.loss_terms(params, cfg, x, y, mask, h0, c0, masks)
    inputs = list(params.values()) + [x, y, mask, h0, c0] + list(masks.values())
    return inputs, [mean, hT, cT], differentiable(cfg, [mean, hT, cT])


@pytest.mark.parametrize("precision", ["float32", "bf16"])
def test_the_rewrite_fires_on_poems_training_graph_and_the_bench_shapes(precision):
    """Every layer of poems.yaml's model, with the recipe's masks and tied output, and of both
    `make bench` shapes is computed by the Op; the plain graph holds none, nor does a GRU's."""
    cfg = dataclasses.replace(load_config(ROOT / "configs" / "poems.yaml", RECIPE + ["model.lstm_op=true",
                                                                               "model.onednn_lstm=off"]).model,
                              precision=precision)
    _, plain, rewritten = _graph(cfg, 40, 64, 32)
    assert (lstm_layer.count(plain), lstm_layer.count(rewritten)) == (0, cfg.num_layers) == (0, 2)
    for s in SHAPES.values():
        shape_cfg = ModelConfig(embedding=s["E"], hidden=s["H"], num_layers=s["L"], precision=precision, lstm_op=True)
        assert lstm_layer.count(_graph(shape_cfg, 40, s["T"], s["B"])[2]) == s["L"]
    gru = dataclasses.replace(cfg, cell="gru")
    assert lstm_layer.count(_graph(gru, 40, 8, 2)[2]) == 0
    assert lstm_layer.count(_graph(dataclasses.replace(cfg, lstm_op=False), 40, 8, 2)[2]) == 0


def _values(cfg, seed=0):
    rng = np.random.default_rng(seed)
    params = M.init_params(V, cfg, seed)
    x, y = (rng.integers(0, V, (T, B)).astype(np.int32) for _ in "xy")
    mask = np.ones((T, B), cfg.dtype)
    mask[3:, 1] = mask[2:, 2] = 0  # rows of different lengths
    h0, c0 = (rng.normal(0, 0.5, (cfg.num_layers, B, cfg.hidden)).astype(cfg.dtype) for _ in "hc")
    return params, [x, y, mask, h0, c0] + draw_masks(rng, cfg, V, T, B)


def test_the_op_computes_the_plain_graphs_loss_states_and_gradients():
    """float64, two layers, tied, every dropout, carried states, padding: the loss, hT, cT and every
    gradient (parameters, h0, c0) of the rewritten graph equal the plain graph's; the loss equals the
    NumPy reference with the same masks applied."""
    cfg = load_config(overrides=RECIPE + ["model.lstm_op=true", "model.dtype=float64", "model.num_layers=2",
                                          "model.embedding=4", "model.hidden=6", "model.init_scale=0.5"]).model
    inputs, plain, rewritten = _graph(cfg, V, T, B)
    params, data = _values(cfg)
    h0, c0 = inputs[len(params) + 3:len(params) + 5]
    results = []
    for outs in (plain, rewritten):
        cost = outs[0] + (outs[1] ** 2).sum() + (outs[2] ** 3).sum()  # hT and cT reach the gradient too
        grads = pytensor.grad(cost, inputs[:len(params)] + [h0, c0])
        results.append(pytensor.function(inputs, outs + grads, mode=get_mode("jax"))(*params.values(), *data))
    for a, b in zip(*results):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    x, y, mask, H0, C0, *drop = data
    drop = dict(zip(M.mask_shapes(cfg, V, T, B), drop))
    total, count, hT, cT = nll_sum(params, "lstm", 2, x, y, mask, H0, C0, drop=drop)
    for got, want in zip(results[1][:3], [total / count, hT, cT]):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def _scan_ops(cfg, mode=None):
    """Op-name counts inside each compiled scan of the training step, by scan name, and the step."""
    from pytensor.scan.op import Scan

    params = M.to_shared(M.init_params(V, cfg, 0))
    tcfg = TrainConfig(optimizer="sgd")
    inputs, outputs, upd = train_graph(params, optim.init_state(params, tcfg.optimizer), cfg, tcfg, (T, B))
    fn = pytensor.function(inputs, outputs, updates=upd, mode=mode or get_mode("jax"), on_unused_input="ignore")
    def names(op):  # a fused Composite counts as the scalar ops inside it
        op = getattr(op, "scalar_op", op)
        inner = getattr(op, "fgraph", None)
        return [m for n in inner.apply_nodes for m in names(n.op)] if inner is not None else [type(op).__name__]

    out = {}
    for node in fn.maker.fgraph.apply_nodes:
        if isinstance(node.op, Scan):
            out[node.op.name] = [m for n in node.op.fgraph.apply_nodes for m in names(n.op)]
    return out, fn


def test_the_backward_scan_is_the_hand_written_one():
    """bf16, one layer: autodiff's gradient scan recomputes the gates (sigmoids in its loop); the
    Op's backward scan reads them saved by the forward (no sigmoid) and does one product a step,
    dz·Uᵀ (∂U is one product after the loop)."""
    cfg = ModelConfig(embedding=4, hidden=6, precision="bf16")
    plain, _ = _scan_ops(cfg)
    grad_plain = [ops for name, ops in plain.items() if "grad_of" in name]
    assert len(grad_plain) == 1 and any("Sigmoid" in n for n in grad_plain[0])
    op, _ = _scan_ops(dataclasses.replace(cfg, lstm_op=True))
    assert set(op) == {"lstm_layer", "lstm_layer_grad"}
    assert op["lstm_layer_grad"].count("Bf16Dot") == 1
    assert not any("Sigmoid" in n for n in op["lstm_layer_grad"])


def test_the_bf16_push_out_moves_the_weight_gradient_out_of_the_loop():
    """The plain scan's bf16 gradient: with `precision.scan_push_out_add_bf16` included its loop
    holds one Bf16Dot (dz·Uᵀ), by default two (∂U += hᵀ·dz is summed in the loop); the step
    computes the same loss, gradient norm and states either way."""
    from pytensor.compile.mode import get_mode as pytensor_mode

    cfg = ModelConfig(embedding=4, hidden=6, precision="bf16")
    results = []
    for mode in (pytensor_mode(get_mode("jax")).including("scan_push_out_add_bf16"), None):
        ops, fn = _scan_ops(cfg, mode)
        (grad_ops,) = [o for name, o in ops.items() if "grad_of" in name]
        params, data = _values(cfg)
        results.append((grad_ops.count("Bf16Dot"), fn(*data[:5], np.float32(0.0))))
    assert [r[0] for r in results] == [1, 2]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_the_gradient_check_differentiates_through_the_op():
    """The `-op` models of the gradient check compile the Op's backward loop, not autodiff's."""
    from pytensor.scan.op import Scan

    from symlstm.core.compiled import build_param_fns
    from symlstm.tools.gradcheck import standard_models

    for cfg in (c for c in standard_models() if c.lstm_op):
        shapes = M.param_shapes(6, cfg)
        _, f_grad = build_param_fns(shapes, cfg, get_mode("jax"), (4, 3), masks=True, want=("grads",))
        scans = [n.op.name for n in f_grad.maker.fgraph.apply_nodes if isinstance(n.op, Scan)]
        assert scans.count("lstm_layer_grad") == cfg.num_layers and not any("grad_of" in s for s in scans)
