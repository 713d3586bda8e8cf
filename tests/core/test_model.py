"""The compiled graphs against the NumPy reference, masks, states, determinism, overfitting."""
import numpy as np
import pytest

from symlstm import ModelConfig, TrainConfig, compile_model, init_params
from symlstm.core.model import param_shapes

from reference import forward, nll_sum

B, T, E, H, V = 2, 3, 4, 5, 6


def _model(cell, layers=1, dtype="float64", seed=0, **kw):
    cfg = ModelConfig(cell=cell, embedding=E, hidden=H, num_layers=layers, dtype=dtype, init_scale=0.5, **kw)
    params = init_params(V, cfg, seed)
    return cfg, params, compile_model(params, cfg, TrainConfig(optimizer="sgd", grad_clip=0))


def _batch(rng, T=T, B=B, pad=True):
    x = rng.integers(0, V, (T, B)).astype(np.int32)
    y = rng.integers(0, V, (T, B)).astype(np.int32)
    mask = np.ones((T, B))
    if pad:
        mask[T - 1:, 1] = 0
    return x, y, mask


@pytest.fixture(scope="module", params=[("lstm", 1), ("gru", 1), ("rnn", 1), ("lstm", 2)], ids=str)
def model(request):
    return _model(*request.param)


def test_param_shapes_follow_the_documented_layout():
    shapes = param_shapes(V, ModelConfig(embedding=E, hidden=H, num_layers=2))
    assert shapes == {"embedding": (V, E), "layer0/W": (E, 4 * H), "layer0/U": (H, 4 * H), "layer0/b": (4 * H,),
                      "layer1/W": (H, 4 * H), "layer1/U": (H, 4 * H), "layer1/b": (4 * H,),
                      "output/W": (H, V), "output/b": (V,)}


def test_forget_bias_initialised_to_one():
    params = init_params(V, ModelConfig(embedding=E, hidden=H), 0)
    b = params["layer0/b"]
    assert np.all(b[H:2 * H] == 1.0) and np.all(b[:H] == 0) and np.all(b[2 * H:] == 0)


def test_evaluate_matches_numpy_reference(model):
    cfg, params, m = model
    rng = np.random.default_rng(1)
    x, y, mask = _batch(rng)
    h0 = rng.normal(size=(cfg.num_layers, B, H))
    c0 = rng.normal(size=(cfg.num_layers, B, H))
    total, count, hT, cT = m.evaluate(x, y, mask, h0, c0)
    ref_total, ref_count, ref_h, ref_c = nll_sum(params, cfg.cell, cfg.num_layers, x, y, mask, h0, c0)
    assert total == pytest.approx(ref_total, rel=1e-12)
    assert count == ref_count == mask.sum()
    np.testing.assert_allclose(hT, ref_h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cT, ref_c, rtol=1e-12, atol=1e-14)


def test_single_step_matches_numpy_reference(model):
    """model.step drives all sampling and beam scores: its log-probabilities and both states, step
    by step from random states, against the NumPy loop."""
    cfg, params, m = model
    rng = np.random.default_rng(2)
    x, _, mask = _batch(rng, pad=False)
    h0 = rng.normal(size=(cfg.num_layers, B, H))
    c0 = rng.normal(size=(cfg.num_layers, B, H))
    ref_logp, _, _ = forward(params, cfg.cell, cfg.num_layers, x, mask, h0, c0)
    h, c = h0, c0
    for t in range(T):
        logp, h, c = m.step(x[t], h, c)
        _, ref_h, ref_c = forward(params, cfg.cell, cfg.num_layers, x[:t + 1], mask[:t + 1], h0, c0)
        np.testing.assert_allclose(logp, ref_logp[t], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(c, ref_c, rtol=1e-12, atol=1e-14)


def test_padding_changes_neither_loss_nor_final_state_of_real_rows(model):
    cfg, params, m = model
    rng = np.random.default_rng(3)
    x, y, _ = _batch(rng, T=5, B=1, pad=False)
    t_short, n_short, h_short, c_short = m.evaluate(x, y, np.ones((5, 1)), *m.zero_state(1))
    # the same row padded to length 8 next to another, longer row
    xp = np.concatenate([x, rng.integers(0, V, (3, 1))]).astype(np.int32)
    yp = np.concatenate([y, rng.integers(0, V, (3, 1))]).astype(np.int32)
    other_x, other_y = rng.integers(0, V, (8, 1)).astype(np.int32), rng.integers(0, V, (8, 1)).astype(np.int32)
    mask = np.zeros((8, 2))
    mask[:5, 0] = 1
    mask[:, 1] = 1
    X, Y = np.hstack([xp, other_x]), np.hstack([yp, other_y])
    _, _, hT, cT = m.evaluate(X, Y, mask, *m.zero_state(2))
    t_other, _, _, _ = m.evaluate(other_x, other_y, np.ones((8, 1)), *m.zero_state(1))
    t_both, n_both, _, _ = m.evaluate(X, Y, mask, *m.zero_state(2))
    assert t_both == pytest.approx(t_short + t_other, rel=1e-12)
    assert n_both == n_short + 8
    np.testing.assert_allclose(hT[:, 0], h_short[:, 0], rtol=1e-12)
    np.testing.assert_allclose(cT[:, 0], c_short[:, 0], rtol=1e-12)


def test_final_states_carry_over_like_one_long_sequence(model):
    cfg, params, m = model
    x, y, mask = _batch(np.random.default_rng(4), T=6, pad=False)
    t_all, _, h_all, _ = m.evaluate(x, y, mask, *m.zero_state(B))
    t1, _, h1, c1 = m.evaluate(x[:3], y[:3], mask[:3], *m.zero_state(B))
    t2, _, h2, _ = m.evaluate(x[3:], y[3:], mask[3:], h1, c1)
    assert t1 + t2 == pytest.approx(t_all, rel=1e-12)
    np.testing.assert_allclose(h2, h_all, rtol=1e-12)


def test_lstm_equals_torch_nn_lstm():
    torch = pytest.importorskip("torch")
    cfg, params, m = _model("lstm", layers=2)
    x, y, mask = _batch(np.random.default_rng(5), pad=False)
    lstm = torch.nn.LSTM(E, H, num_layers=2).double()
    with torch.no_grad():
        for l in range(2):
            getattr(lstm, f"weight_ih_l{l}").copy_(torch.from_numpy(params[f"layer{l}/W"].T))
            getattr(lstm, f"weight_hh_l{l}").copy_(torch.from_numpy(params[f"layer{l}/U"].T))
            getattr(lstm, f"bias_ih_l{l}").copy_(torch.from_numpy(params[f"layer{l}/b"]))
            getattr(lstm, f"bias_hh_l{l}").zero_()
        out, (hT, cT) = lstm(torch.from_numpy(params["embedding"][x]))
        logp = torch.log_softmax(out @ torch.from_numpy(params["output/W"]) + torch.from_numpy(params["output/b"]), -1)
        ref = -logp.gather(-1, torch.from_numpy(y.astype(np.int64))[..., None]).sum().item()
    total, _, h, c = m.evaluate(x, y, mask, *m.zero_state(B))
    assert total == pytest.approx(ref, rel=1e-10)
    np.testing.assert_allclose(h, hT.numpy(), rtol=1e-10)
    np.testing.assert_allclose(c, cT.numpy(), rtol=1e-10)


def test_training_is_deterministic_under_a_seed():
    def run():
        cfg = ModelConfig(embedding=E, hidden=H, dropout=0.3)
        m = compile_model(init_params(V, cfg, 7), cfg, TrainConfig(), seed=7)
        x, y, mask = _batch(np.random.default_rng(8), T=T, B=B)
        mask = mask.astype("float32")
        losses = [m.train_step(x, y, mask, *m.zero_state(B))[0] for _ in range(3)]
        return losses, m.get_params()

    (l1, p1), (l2, p2) = run(), run()
    assert l1 == l2
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_tiny_model_overfits_one_poem():
    poem = "白日依山盡，黃河入海流。"
    vocab = {ch: i + 4 for i, ch in enumerate(sorted(set(poem)))}
    ids = np.array([2] + [vocab[ch] for ch in poem] + [3], np.int32)
    cfg = ModelConfig(embedding=16, hidden=32)
    m = compile_model(init_params(len(vocab) + 4, cfg, 0), cfg, TrainConfig(learning_rate=0.02))
    x, y, mask = ids[:-1, None], ids[1:, None], np.ones((len(ids) - 1, 1), np.float32)
    for _ in range(150):
        loss = m.train_step(x, y, mask, *m.zero_state(1))[0]
    assert loss < 0.05


@pytest.mark.parametrize("bad, message", [
    (dict(x=np.zeros((T, B), np.float32)), "x: expected an integer array"),
    (dict(y=np.zeros((T + 1, B), np.int32)), "y: expected shape"),
    (dict(mask=np.ones((T, B), np.float32)), "mask: expected dtype float64"),
    (dict(h0=np.zeros((1, B, H + 1))), "h0: expected shape"),
    (dict(x=np.full((T, B), V, np.int32)), "x: token ids must lie in"),
])
def test_bad_arrays_name_the_argument(model, bad, message):
    cfg, _, m = model
    args = dict(x=np.zeros((T, B), np.int32), y=np.zeros((T, B), np.int32), mask=np.ones((T, B)),
                h0=np.zeros((cfg.num_layers, B, H)), c0=np.zeros((cfg.num_layers, B, H)))
    args.update(bad)
    with pytest.raises((TypeError, ValueError), match=message):
        m.evaluate(**args)


@pytest.mark.parametrize("kw, message", [
    (dict(hidden=0), "model.hidden: must be between 1 and 65536"),
    (dict(cell="lstmm"), "not one of lstm, gru, rnn"),
])
def test_bad_model_settings(kw, message):
    from symlstm.config import ConfigError, load_config
    key, value = next(iter(kw.items()))
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=[f"model.{key}={value}"])


def test_pytorch_init_draws_as_pytorch_does():
    """nn.Embedding's N(0, 1), nn.LSTM's and nn.Linear's U(±1/√H) for weights and biases; the
    forget-gate bias adds forget_bias to its draw."""
    cfg = ModelConfig(embedding=64, hidden=100, num_layers=2, init="pytorch", forget_bias=1.0)
    p = init_params(3000, cfg, 0)
    assert abs(p["embedding"].std() - 1) < 0.01 and abs(p["embedding"].mean()) < 0.01
    bound = 1 / np.sqrt(100)
    for name in ("layer0/W", "layer1/U", "output/W", "output/b"):
        v = p[name]
        assert np.abs(v).max() <= bound and abs(v.std() - bound / np.sqrt(3)) < 0.05 * bound, name
    b = p["layer1/b"]
    assert abs(b[100:200].mean() - 1.0) < 0.3 * bound and np.abs(b[100:200] - 1.0).max() <= bound
    assert np.abs(b[:100]).max() <= bound and b[:100].std() > 0
