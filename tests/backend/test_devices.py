"""Data-parallel training over two devices (CPU devices forced with XLA_FLAGS, in a fresh process,
since JAX reads the flag once): the same step as one device, arrays kept on the devices, checkpoints
that move between device counts."""
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

HERE = ROOT / "tests"


def on_two_devices(*args):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, str(HERE / "multidevice.py"), *args], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def report():
    return on_two_devices()


def test_a_step_on_two_devices_equals_one_device(report):
    assert report["devices"] == 2
    one, two = report["losses"]
    for (l1, n1), (l2, n2) in zip(one, two):  # three steps, every dropout on, tied, states carried
        assert l1 == pytest.approx(l2, rel=1e-6) and n1 == pytest.approx(n2, rel=1e-5)
    assert report["param_max_abs_diff"] < 1e-6 and report["state_max_abs_diff"] < 1e-6
    assert report["h_max_abs_diff"] < 1e-6
    for name in ("eval_split", "eval_replicated"):
        a, b, n_a, n_b = report[name]
        assert a == pytest.approx(b, rel=1e-6) and n_a == n_b


def test_arrays_stay_on_the_devices(report):
    """Parameters and optimizer state are replicated device arrays after a step, the carried state
    is split over the two devices, and a step runs under jax.transfer_guard('disallow'), which
    fails on any implicit copy between host and devices."""
    assert report["params_on_devices"] and report["params_replicated"] and report["h_split"]
    assert report["guarded_step_loss"] > 0
    assert report["odd_batch_error"] == ("a batch of 3 rows does not split over 2 devices: make data.batch_size "
                                         "a multiple of train.devices")


def test_onednn_gives_way_to_xla_on_several_devices(report):
    """Its custom calls carry no sharding rules: `auto` says so and trains through the scan, equal
    to one device's plain step; `on` is refused in one line."""
    assert any("model.onednn_lstm auto: the batch is split over 2 devices, and oneDNN's custom calls carry no "
               "sharding rules" in line for line in report["onednn_lines"])
    assert report["onednn_auto_param_diff"] < 1e-6
    assert report["onednn_on_error"].startswith("model.onednn_lstm on: the batch is split over 2 devices")


@pytest.mark.slow
def test_a_run_moves_between_device_counts(small_corpus):
    result = on_two_devices(str(small_corpus))
    assert result["steps"] == [6, 6] and result["param_max_abs_diff"] < 1e-5
