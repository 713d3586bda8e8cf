"""pytensor.grad against central differences (an independent numeric computation)."""
import pytest

from symlstm.tools.gradcheck import TOLERANCE, gradient_check, standard_models


@pytest.mark.parametrize("cfg", standard_models(), ids=lambda c: f"{c.cell}-L{c.num_layers}")
def test_symbolic_gradients_match_central_differences(cfg):
    rows = gradient_check(cfg)
    names = {r["parameter"] for r in rows}
    assert "embedding" in names and "output/W" in names and f"layer{cfg.num_layers - 1}/U" in names
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
