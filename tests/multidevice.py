"""Run by test_devices.py in a fresh process with XLA_FLAGS=--xla_force_host_platform_device_count=2
(JAX reads it once, at start-up). Prints one JSON object of figures for the test to judge."""
import json
import sys

import jax
import numpy as np

from symlstm import ModelConfig, TrainConfig, compile_model, init_params
from symlstm.errors import InputError


def batch(T=9, B=4, V=30, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(4, V, (T, B)).astype(np.int32)
    mask = np.ones((T, B), np.float32)
    mask[6:, 1] = 0  # padding in one row
    return x, np.roll(x, -1, 0), mask


def run(devices, steps=3, carry=True):
    cfg = ModelConfig(embedding=8, hidden=16, num_layers=2, dropout=0.2, tie_weights=True, dropout_embed=0.1,
                      dropout_input=0.1, dropout_hidden=0.1, dropout_output=0.1, weight_dropout=0.2)  # every mask
    m = compile_model(init_params(30, cfg, 0), cfg, TrainConfig(optimizer="adam", learning_rate=0.01), seed=5,
                      devices=devices)
    h, c = m.zero_state(4)
    out = []
    for k in range(steps):
        x, y, mask = batch(seed=k)
        loss, norm, h, c = m.train_step(x, y, mask, h, c)
        out.append((loss, norm))
        if not carry:
            h, c = m.zero_state(4)
    return m, out, h


def resume_across_device_counts(root):
    """4 steps on 2 devices, resumed for 2 more on 1; against 6 steps on 1 device."""
    from pathlib import Path

    from symlstm import load_config, train
    from symlstm.run.checkpoint import load

    from conftest import tiny_raw

    quiet = dict(log=lambda *_: None, progress=False)
    raw = tiny_raw(max_steps=6, eval_every=2)
    train(load_config(raw=raw), Path(root) / "straight", root, **quiet)
    two = load_config(raw={**raw, "train": {**raw["train"], "max_steps": 4, "devices": 2}})
    train(two, Path(root) / "moved", root, **quiet)
    train(None, Path(root) / "moved", root, resume=True, overrides=["train.devices=1", "train.max_steps=6"], **quiet)
    a, b = load(Path(root) / "straight" / "last.h5"), load(Path(root) / "moved" / "last.h5")
    return {"steps": [a.step, b.step],
            "param_max_abs_diff": max(float(np.abs(a.params[k] - b.params[k]).max()) for k in a.params)}


def main():
    if len(sys.argv) > 1:
        json.dump(resume_across_device_counts(sys.argv[1]), sys.stdout)
        return
    report = {"devices": jax.local_device_count()}
    one, losses1, h1 = run(1)
    two, losses2, h2 = run(2)
    report["losses"] = [losses1, losses2]
    p1, p2 = one.get_params(), two.get_params()
    report["param_max_abs_diff"] = max(float(np.abs(p1[k] - p2[k]).max()) for k in p1)
    report["state_max_abs_diff"] = max(float(np.abs(a - b).max()) for a, b in
                                       zip(one.get_state().values(), two.get_state().values()))
    report["h_max_abs_diff"] = float(np.abs(np.asarray(h1) - np.asarray(h2)).max())
    # where the arrays live after a step on two devices
    storage = [v.container.storage[0] for v in list(two.params.values()) + list(two.state.values())]
    report["params_on_devices"] = all(isinstance(a, jax.Array) and len(a.sharding.device_set) == 2 for a in storage)
    report["params_replicated"] = all(a.sharding.is_fully_replicated for a in storage)
    report["h_split"] = isinstance(h2, jax.Array) and not h2.sharding.is_fully_replicated \
        and len(h2.sharding.device_set) == 2
    # evaluation on two devices equals one device, for a batch that splits and one that does not
    for name, rows in (("eval_split", 4), ("eval_replicated", 3)):
        x, y, mask = batch(B=rows, seed=11)
        z = one.zero_state(rows)
        a, b = one.evaluate(x, y, mask, *z), two.evaluate(x, y, mask, *z)
        report[name] = [a[0], b[0], a[1], b[1]]
    # a step with every implicit transfer forbidden: only the explicit puts and the two scalars move
    x, y, mask = batch(seed=9)
    c2 = two.zero_state(4)[1]
    with jax.transfer_guard("disallow"):
        loss, norm, h, c = two.train_step(x, y, mask, h2, c2)
    report["guarded_step_loss"] = loss
    try:
        two.train_step(*batch(B=3), *two.zero_state(3))
    except InputError as err:
        report["odd_batch_error"] = str(err)
    report.update(onednn_gives_way())
    json.dump(report, sys.stdout)


def onednn_gives_way():
    """oneDNN's custom calls carry no sharding rules: on two devices `auto` trains through XLA's ops
    (three steps equal the plain scan's on one device) and `on` is refused."""
    import dataclasses

    from symlstm.core import paths

    cfg = ModelConfig(embedding=8, hidden=16, onednn_lstm="auto")
    out = {"onednn_lines": list(paths.decide(cfg, 2).lines)}
    tcfg = TrainConfig(optimizer="adam", learning_rate=0.01)
    models = [compile_model(init_params(30, c, 0), c, tcfg, seed=5, devices=n)
              for c, n in ((cfg, 2), (dataclasses.replace(cfg, onednn_lstm="off"), 1))]
    for k in range(3):
        x, y, mask = batch(seed=k)
        for m in models:
            m.train_step(x, y, mask, *m.zero_state(4))
    a, b = (m.get_params() for m in models)
    out["onednn_auto_param_diff"] = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    try:
        on = dataclasses.replace(cfg, onednn_lstm="on")
        compile_model(init_params(30, on, 0), on, tcfg, devices=2)
    except InputError as err:
        out["onednn_on_error"] = str(err)
    return out


if __name__ == "__main__":
    main()
