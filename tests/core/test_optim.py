"""Update rules against hand-computed NumPy steps, clipping, schedules, and loss decrease."""
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from symlstm import ModelConfig, TrainConfig, compile_model, init_params
from symlstm.core import optim

A = np.array([[1.0, -2.0], [0.5, 3.0]])  # loss = Σ a p² / 2, so grad = a p


def _run(cfg, steps, lr=0.1):
    p0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    p = pytensor.shared(p0.copy(), name="w")
    params = {"w": p}
    state = optim.init_state(params, cfg.optimizer)
    loss = (0.5 * A * p ** 2).sum()
    grads = {"w": pytensor.grad(loss, p)}
    fn = pytensor.function([], loss, updates=optim.updates(params, grads, state, np.float64(lr), cfg))
    for _ in range(steps):
        fn()
    return p0, p.get_value()


def numpy_reference(name, p, steps, lr, c):
    p = p.copy()
    m = v = np.zeros_like(p)
    eg = ex = np.zeros_like(p)
    for t in range(1, steps + 1):
        g = A * p
        if name == "sgd":
            p = p - lr * g
        elif name == "momentum":
            v = c.momentum * v - lr * g
            p = p + v
        elif name == "adam":
            m = c.beta1 * m + (1 - c.beta1) * g
            v = c.beta2 * v + (1 - c.beta2) * g ** 2
            m_hat, v_hat = m / (1 - c.beta1 ** t), v / (1 - c.beta2 ** t)
            p = p - lr * m_hat / (np.sqrt(v_hat) + c.eps)
        elif name == "rmsprop":
            v = c.decay * v + (1 - c.decay) * g ** 2
            p = p - lr * g / (np.sqrt(v) + c.eps)
        elif name == "adadelta":
            eg = c.decay * eg + (1 - c.decay) * g ** 2
            dx = -np.sqrt(ex + c.eps) / np.sqrt(eg + c.eps) * g
            ex = c.decay * ex + (1 - c.decay) * dx ** 2
            p = p + dx
    return p


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam", "rmsprop", "adadelta"])
def test_update_matches_numpy_reference(name):
    cfg = TrainConfig(optimizer=name, eps=1e-6)
    p0, got = _run(cfg, steps=3)
    np.testing.assert_allclose(got, numpy_reference(name, p0, 3, 0.1, cfg), rtol=1e-12)


def test_clipping_bounds_the_global_norm():
    g = {"a": pt.as_tensor(np.array([3.0, 4.0])), "b": pt.as_tensor(np.array([12.0]))}  # norm 13
    clipped, norm = optim.clip_by_global_norm(g, 5.0, "float64")
    values = [c.eval() for c in clipped.values()]
    assert norm.eval() == pytest.approx(13.0)
    assert np.sqrt(sum((v ** 2).sum() for v in values)) == pytest.approx(5.0)
    np.testing.assert_allclose(values[0], np.array([3.0, 4.0]) * 5 / 13)
    small, _ = optim.clip_by_global_norm(g, 100.0, "float64")
    np.testing.assert_allclose(small["b"].eval(), [12.0])


def test_schedules():
    assert optim.learning_rate(TrainConfig(learning_rate=1.0), 50, 3, 100) == 1.0
    step = TrainConfig(learning_rate=1.0, schedule="step", decay_after=2, decay_rate=0.5)
    assert [optim.learning_rate(step, 0, e, 100) for e in range(4)] == [1.0, 1.0, 0.5, 0.25]
    cos = TrainConfig(learning_rate=1.0, schedule="cosine", warmup_steps=10)
    assert optim.learning_rate(cos, 4, 0, 110) == pytest.approx(0.5)
    assert optim.learning_rate(cos, 10, 0, 110) == pytest.approx(1.0)
    assert optim.learning_rate(cos, 60, 0, 110) == pytest.approx(0.5)
    assert optim.learning_rate(cos, 110, 0, 110) == pytest.approx(0.0)
    # with a time budget the cosine spans it (or the steps, whichever ends first)
    timed = TrainConfig(learning_rate=1.0, schedule="cosine", time_budget=100.0)
    assert optim.learning_rate(timed, 10, 0, 10_000, elapsed=50.0) == pytest.approx(0.5)
    assert optim.learning_rate(timed, 10, 0, 10_000, elapsed=100.0) == pytest.approx(0.0)
    assert optim.learning_rate(timed, 5_000, 0, 10_000, elapsed=1.0) == pytest.approx(0.5)
    # linear decay to zero (Li et al. 2020), over the budget or the steps, after its warm-up
    lin = TrainConfig(learning_rate=1.0, schedule="linear", warmup_steps=10, time_budget=100.0)
    assert optim.learning_rate(lin, 4, 0, 110) == pytest.approx(0.5)
    assert optim.learning_rate(lin, 35, 0, 110) == pytest.approx(0.75)
    assert optim.learning_rate(lin, 10, 0, 10_000, elapsed=25.0) == pytest.approx(0.75)
    assert optim.learning_rate(lin, 10, 0, 10_000, elapsed=100.0) == 0.0
    # warmup-stable-decay: the peak until the last fifth, then linearly to zero over it
    wsd = TrainConfig(learning_rate=1.0, schedule="linear", decay_fraction=0.2, time_budget=100.0)
    assert [optim.learning_rate(wsd, 10, 0, 10_000, elapsed=t) for t in (0.0, 50.0, 80.0, 90.0, 95.0, 100.0)] == \
        pytest.approx([1.0, 1.0, 1.0, 0.5, 0.25, 0.0])
    assert optim.learning_rate(wsd, 900, 0, 1_000) == pytest.approx(0.5)  # over the steps when they end first


def three_adam_steps(names, p0, cfg):
    """Parameters named `names`, each starting at p0, after three of `optim.updates`' steps at rate
    0.1 on the loss Σ ½ A p²: name -> shared."""
    shared = {n: pytensor.shared(p0.copy(), name=n) for n in names}
    state = optim.init_state(shared, "adam")
    loss = sum((0.5 * A * p ** 2).sum() for p in shared.values())
    grads = dict(zip(shared, pytensor.grad(loss, list(shared.values()))))
    fn = pytensor.function([], loss, updates=optim.updates(shared, grads, state, np.float64(0.1), cfg))
    for _ in range(3):
        fn()
    return shared


def test_adamw_decays_the_matrices_apart_from_the_gradient():
    """AdamW (Loshchilov & Hutter 2019, Algorithm 2, schedule multiplier = lr): p ← p − lr(m̂/(√v̂+ε) + λp),
    written out in NumPy; a bias (a name ending in /b) is not decayed."""
    cfg = TrainConfig(optimizer="adam", weight_decay=0.1)
    p0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    shared = three_adam_steps(("w", "out/b"), p0, cfg)
    p, m, v = p0.copy(), 0, 0
    for t in range(1, 4):
        g = A * p
        m = cfg.beta1 * m + (1 - cfg.beta1) * g
        v = cfg.beta2 * v + (1 - cfg.beta2) * g ** 2
        p = p - 0.1 * ((m / (1 - cfg.beta1 ** t)) / (np.sqrt(v / (1 - cfg.beta2 ** t)) + cfg.eps) + 0.1 * p)
    np.testing.assert_allclose(shared["w"].get_value(), p, rtol=1e-12)
    plain = numpy_reference("adam", p0, 3, 0.1, cfg)
    np.testing.assert_allclose(shared["out/b"].get_value(), plain, rtol=1e-12)
    assert not np.allclose(p, plain)


def test_decay_embedding_false_leaves_the_embedding_alone():
    """With `decay_embedding: false` the embedding (the tied output matrix) follows plain Adam, the
    NumPy reference's, while another matrix still decays."""
    cfg = TrainConfig(optimizer="adam", weight_decay=0.1, decay_embedding=False)
    p0 = np.array([[0.3, -0.7], [1.2, 0.4]])
    shared = three_adam_steps(("embedding", "layer0/U"), p0, cfg)
    plain = numpy_reference("adam", p0, 3, 0.1, cfg)
    np.testing.assert_allclose(shared["embedding"].get_value(), plain, rtol=1e-12)
    assert not np.allclose(shared["layer0/U"].get_value(), plain, rtol=1e-6)


@pytest.mark.parametrize("name, lr", [("sgd", 0.5), ("momentum", 0.1), ("adam", 0.01), ("rmsprop", 0.01), ("adadelta", 1.0)])
def test_each_optimizer_decreases_the_loss_of_the_model(name, lr):
    cfg = ModelConfig(embedding=8, hidden=8)
    eps = 1e-4 if name == "adadelta" else 1e-8  # adadelta's first steps are about sqrt(eps) long
    m = compile_model(init_params(10, cfg, 0), cfg, TrainConfig(optimizer=name, learning_rate=lr, eps=eps))
    rng = np.random.default_rng(0)
    x = rng.integers(4, 10, (6, 4)).astype(np.int32)
    y = np.roll(x, -1, axis=0)
    mask = np.ones((6, 4), np.float32)
    losses = [m.train_step(x, y, mask, *m.zero_state(4))[0] for _ in range(25)]
    assert losses[-1] < losses[0] - 0.05
