"""The sampling graphs' pieces (`core.sampling`) against NumPy."""
import numpy as np


def test_draw_is_the_inverse_cdf_and_never_picks_a_zero_weight():
    """model.draw (two-level prefix sums) against NumPy's float64 cumsum and searchsorted."""
    import pytensor
    import pytensor.tensor as pt

    from symlstm.backend.runtime import get_mode
    from symlstm.core.sampling import draw

    rng = np.random.default_rng(0)
    B, V = 64, 1000
    w = rng.random((B, V)).astype(np.float32) ** 4
    w[rng.random((B, V)) < 0.7] = 0  # masked tokens
    w[:, -100:] = 0  # a masked tail: rounding must not reach into it
    u = rng.random(B).astype(np.float32)
    u[:4] = [0.0, np.nextafter(np.float32(1), np.float32(0)), 0.5, 0.999]
    sw, su = pt.tensor("w", dtype="float32", shape=(B, V)), pt.tensor("u", dtype="float32", shape=(B,))
    f = pytensor.function([sw, su], draw(sw, su), mode=get_mode("jax"))
    for trial in range(3):
        got = f(w, u)
        cdf = np.cumsum(w.astype(np.float64), axis=1)
        target = u * cdf[:, -1]
        want = (cdf <= target[:, None]).sum(axis=1)  # the first index whose cumulative weight exceeds it
        assert (w[np.arange(B), got] > 0).all()
        close = np.abs(cdf[np.arange(B), np.minimum(want, V - 1)] - target) < 1e-4 * cdf[:, -1]
        assert ((got == want) | close).all() and (got == want).mean() > 0.9
        u = rng.random(B).astype(np.float32)
