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


@pytest.fixture(scope="module", params=[("lstm", 1), ("gru", 1), ("rnn", 1), ("lstm", 2), ("mogrifier", 2)], ids=str)
def model(request):
    return _model(*request.param)


def test_param_shapes_follow_the_documented_layout():
    shapes = param_shapes(V, ModelConfig(embedding=E, hidden=H, num_layers=2))
    assert shapes == {"embedding": (V, E), "layer0/W": (E, 4 * H), "layer0/U": (H, 4 * H), "layer0/b": (4 * H,),
                      "layer1/W": (H, 4 * H), "layer1/U": (H, 4 * H), "layer1/b": (4 * H,),
                      "output/W": (H, V), "output/b": (V,)}


def test_the_mogrifiers_rounds_alternate_between_input_and_state():
    shapes = param_shapes(V, ModelConfig(cell="mogrifier", mogrifier_rounds=3, embedding=E, hidden=H, num_layers=2))
    assert {k: v for k, v in shapes.items() if k[-2] in "QR"} == {
        "layer0/Q1": (H, E), "layer0/R2": (E, H), "layer0/Q3": (H, E),  # Q gates the input by the state,
        "layer1/Q1": (H, H), "layer1/R2": (H, H), "layer1/Q3": (H, H)}  # R the state by the input
    assert shapes["layer0/W"] == (E, 4 * H) and shapes["layer0/U"] == (H, 4 * H)


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


def test_a_tied_model_equals_pytorchs_tied_model_in_loss_and_embedding_gradient():
    """PyTorch's tying idiom (decoder.weight = encoder.weight, Press & Wolf 2017), a bias-free
    Linear(H, E) as the projection: the same loss, and autograd's gradient of the one embedding
    matrix (both uses summed) equals pytensor.grad's."""
    torch = pytest.importorskip("torch")
    from symlstm.backend.runtime import get_mode
    from symlstm.core.compiled import build_param_fns

    cfg = ModelConfig(embedding=E, hidden=H, num_layers=2, dtype="float64", init_scale=0.5, tie_weights=True)
    params = init_params(V, cfg, 3)
    x, y, mask = _batch(np.random.default_rng(5), pad=False)
    f_loss, f_grad = build_param_fns({k: v.shape for k, v in params.items()}, cfg, get_mode("jax"), (T, B))
    zeros = np.zeros((2, B, H))
    loss = float(f_loss(*params.values(), x, y, mask, zeros, zeros))
    grad = dict(zip(params, f_grad(*params.values(), x, y, mask, zeros, zeros)))

    emb = torch.nn.Embedding(V, E).double()
    lstm = torch.nn.LSTM(E, H, num_layers=2).double()
    proj = torch.nn.Linear(H, E, bias=False).double()
    decoder = torch.nn.Linear(E, V).double()
    decoder.weight = emb.weight  # tied
    with torch.no_grad():
        emb.weight.copy_(torch.from_numpy(params["embedding"]))
        for l in range(2):
            getattr(lstm, f"weight_ih_l{l}").copy_(torch.from_numpy(params[f"layer{l}/W"].T))
            getattr(lstm, f"weight_hh_l{l}").copy_(torch.from_numpy(params[f"layer{l}/U"].T))
            getattr(lstm, f"bias_ih_l{l}").copy_(torch.from_numpy(params[f"layer{l}/b"]))
            getattr(lstm, f"bias_hh_l{l}").zero_()
        proj.weight.copy_(torch.from_numpy(params["output/proj"].T))
        decoder.bias.copy_(torch.from_numpy(params["output/b"]))
    out, _ = lstm(emb(torch.from_numpy(x.astype(np.int64))))
    logits = decoder(proj(out))
    ref = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y.astype(np.int64)).reshape(-1))
    ref.backward()
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad["embedding"], emb.weight.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grad["output/proj"], proj.weight.grad.numpy().T, rtol=1e-9, atol=1e-12)


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


AWD = dict(dropout_embed=0.2, dropout_input=0.3, dropout_hidden=0.25, dropout_output=0.4, weight_dropout=0.5)


@pytest.mark.parametrize("hidden", [H, E], ids=["projected", "square"])
def test_a_tied_model_has_one_matrix_and_matches_the_numpy_reference(hidden):
    """Tied: no output/W; the loss is the reference's (h P) Eᵀ + b; evaluation ignores every dropout."""
    cfg = ModelConfig(embedding=E, hidden=hidden, num_layers=2, dtype="float64", init_scale=0.5, tie_weights=True,
                      **AWD)
    params = init_params(V, cfg, 0)
    assert "output/W" not in params and ("output/proj" in params) == (hidden != E)
    m = compile_model(params, cfg)
    rng = np.random.default_rng(1)
    x, y, mask = _batch(rng)
    h0, c0 = rng.normal(size=(2, 2, B, hidden))
    first = m.evaluate(x, y, mask, h0, c0)
    assert m.evaluate(x, y, mask, h0, c0)[0] == first[0]  # deterministic with every dropout set
    assert first[0] == pytest.approx(nll_sum(params, "lstm", 2, x, y, mask, h0, c0)[0], rel=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "mogrifier"])
def test_the_training_loss_applies_each_dropout_as_the_reference_does(cell):
    """The masks as inputs: locked masks (B, ·) the same at every step, the weight mask on U at every
    step, embedding rows zeroed wherever the character stands. A per-step mask would not match."""
    from symlstm.backend.runtime import get_mode
    from symlstm.core.compiled import build_param_fns, draw_masks
    from symlstm.core.model import mask_shapes

    cfg = ModelConfig(cell=cell, embedding=E, hidden=H, num_layers=2, dtype="float64", init_scale=0.5,
                      tie_weights=True, dropout=0.1, **AWD)
    params = init_params(V, cfg, 0)
    f_loss, _ = build_param_fns({k: v.shape for k, v in params.items()}, cfg, get_mode("jax"), (T, B), masks=True,
                                want=("loss",))
    rng = np.random.default_rng(2)
    x, y, mask = _batch(rng)
    h0, c0 = rng.normal(size=(2, 2, B, H))
    drop = draw_masks(np.random.default_rng(3), cfg, V, T, B)
    names = list(mask_shapes(cfg, V, T, B))
    assert names == ["keep0", "keep1", "embed", "input", "hidden0", "output", "U0", "U1"]
    assert drop[names.index("U0")].shape == (H, 4 * H) and drop[names.index("input")].shape == (B, E)
    for d, k in zip(drop, names):  # each 0 or 1/(1-p)
        p = {"k": 0.1, "e": 0.2, "i": 0.3, "h": 0.25, "o": 0.4, "U": 0.5}[k[0]]
        assert set(np.unique(d)) <= {0.0, 1 / (1 - p)} and 0 in d
    total, count = nll_sum(params, cell, 2, x, y, mask, h0, c0, drop=dict(zip(names, drop)))[:2]
    assert float(f_loss(*params.values(), x, y, mask, h0, c0, *drop)) == pytest.approx(total / count, rel=1e-12)


def test_each_mask_drops_with_its_probability():
    """Over 2 × 10⁶ draws a mask's share of zeros is its key's p within 5 standard errors, and its
    kept entries are 1/(1-p) in the model's dtype: the 32-bit threshold draw is Bernoulli(p)."""
    from symlstm.core.compiled import draw_masks
    from symlstm.core.model import mask_shapes

    cfg = ModelConfig(embedding=64, hidden=512, num_layers=2, weight_dropout=0.2, dropout_input=0.1,
                      dropout_hidden=0.25, dropout_output=0.4)
    drop = dict(zip(mask_shapes(cfg, V, 33, 32), draw_masks(np.random.default_rng(0), cfg, V, 33, 32)))
    for k, p in (("U0", 0.2), ("U1", 0.2), ("hidden0", 0.25), ("output", 0.4), ("input", 0.1)):
        d = drop[k]
        assert d.dtype == np.float32 and set(np.unique(d)) == {0.0, np.float32(1 / (1 - p))}
        share, n = float((d == 0).mean()), d.size
        assert abs(share - p) < 5 * (p * (1 - p) / n) ** 0.5, (k, share, p)


def test_each_batch_draws_fresh_masks_from_the_seeded_generator():
    """The weight-dropout mask differs between batches (and the locked ones): the same batch twice at
    lr 0 gives two losses; a fresh model of the same seed repeats both."""
    def losses():
        cfg = ModelConfig(embedding=E, hidden=H, weight_dropout=0.5, dropout_output=0.3)
        m = compile_model(init_params(V, cfg, 0), cfg, TrainConfig(), seed=5)
        x, y, mask = _batch(np.random.default_rng(8))
        return [m.train_step(x, y, mask.astype("float32"), *m.zero_state(B), 0.0)[0] for _ in range(2)]

    a, b = losses(), losses()
    assert a == b and a[0] != a[1]
