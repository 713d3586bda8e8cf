"""pytensor.grad against central differences (an independent numeric computation)."""
import pytest

from symlstm.tools.gradcheck import TOLERANCE, gradient_check, model_id, standard_models

pytestmark = pytest.mark.isa  # also run capped to AVX2 (make test's second leg)


@pytest.mark.parametrize("cfg", standard_models(),
                         ids=model_id)
def test_symbolic_gradients_match_central_differences(cfg):
    """The tied models hold every dropout as fixed masks: the embedding's gradient is the sum of its
    two uses (lookup and output layer), checked against central differences like any other."""
    rows = gradient_check(cfg)
    names = {r["parameter"] for r in rows}
    out = ({"output/proj"} if cfg.hidden != cfg.embedding else set()) if cfg.tie_weights else {"output/W"}
    layers = {f"layer{l}/{k}" for l in range(cfg.num_layers) for k in "WUb"}
    if cfg.cell == "mogrifier":  # the rounds' matrices: Q1, R2, Q3, R4, Q5
        layers |= {f"layer{l}/{k}" for l in range(cfg.num_layers) for k in ("Q1", "R2", "Q3", "R4", "Q5")}
    assert names == {"embedding", "output/b"} | layers | out
    for r in rows:
        assert r["entries"] > 0
        assert r["max_rel_error"] <= TOLERANCE, r


def test_gradient_check_detects_a_wrong_gradient(monkeypatch):
    """The check must fail when the symbolic gradient is wrong: scale it and look."""
    import pytensor

    real_grad = pytensor.grad
    monkeypatch.setattr(pytensor, "grad", lambda cost, wrt: [g * 1.001 for g in real_grad(cost, wrt)])
    rows = gradient_check(standard_models()[0])
    assert len(rows) == 6 and all(r["entries"] > 0 for r in rows)
    assert not any(r["passed"] for r in rows), rows  # every tensor has a nonzero gradient, so each is off


def test_the_gradient_check_sees_a_tied_models_second_use():
    """Leave the output layer's use of the tied embedding out of the symbolic gradient (treat Eᵀ as a
    constant there) and the check must fail on the embedding: the sum of both uses is what it checks."""
    from symlstm.core import model as M

    cfg = next(c for c in standard_models() if c.tie_weights and c.hidden == c.embedding)
    real = M.output_logits
    try:
        M.output_logits = lambda params, c, top, precision="float32": real(
            dict(params, embedding=pytensor_constant_grad(params["embedding"])), c, top, precision)
        rows = {r["parameter"]: r for r in gradient_check(cfg)}
    finally:
        M.output_logits = real
    assert not rows["embedding"]["passed"] and rows["layer0/U"]["passed"]


def pytensor_constant_grad(x):
    from pytensor.gradient import disconnected_grad

    return disconnected_grad(x)
