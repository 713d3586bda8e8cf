"""Gradient flow across time against finite differences of the NumPy reference, and the docs' table
against the documented command."""
import csv

import numpy as np
import pytest

from symlstm import ModelConfig, init_params
from symlstm.tools.gradflow import gradient_flow, write_csv

from reference import cell_step


def numpy_last_loss(params, cell, x, y, k, bump_h=None, bump_c=None):
    """L_T of a one-layer model in NumPy, with h_k (and c_k) bumped after step k."""
    H = params["layer0/U"].shape[0]
    h = np.zeros((x.shape[1], H))
    c = np.zeros((x.shape[1], H))
    for t in range(x.shape[0]):
        h, c = cell_step(cell, params["embedding"][x[t]], h, c, params["layer0/W"], params["layer0/U"], params["layer0/b"])
        if t == k:
            h = h + (bump_h if bump_h is not None else 0)
            c = c + (bump_c if bump_c is not None else 0)
    logits = h @ params["output/W"] + params["output/b"]
    logp = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    return -logp[0, y[-1, 0]]


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_gradient_norm_matches_finite_differences(cell):
    cfg = ModelConfig(cell=cell, embedding=4, hidden=5, dtype="float64", init_scale=0.5)
    params = init_params(7, cfg, 0)
    rng = np.random.default_rng(1)
    T, k = 8, 3
    x, y = rng.integers(0, 7, (T, 1)), rng.integers(0, 7, (T, 1))
    result = gradient_flow(params, cfg, x, y)
    for key, which in (("grad_h", "h"), ("grad_c", "c")) if cell == "lstm" else (("grad_h", "h"),):
        numeric = np.zeros(5)
        for j in range(5):
            e = np.zeros((1, 5))
            e[0, j] = 1e-5
            kw = lambda s: {f"bump_{which}": s * e}
            numeric[j] = (numpy_last_loss(params, cell, x, y, k, **kw(1)) -
                          numpy_last_loss(params, cell, x, y, k, **kw(-1))) / 2e-5
        assert result[key][T - 1 - k] == pytest.approx(np.linalg.norm(numeric), rel=1e-7)


def test_rnn_with_small_weights_decays_faster_than_lstm_with_open_forget_gates(tmp_path):
    rng = np.random.default_rng(2)
    x, y = rng.integers(0, 30, (40, 4)), rng.integers(0, 30, (40, 4))
    rnn = ModelConfig(cell="rnn", embedding=8, hidden=16, init_scale=0.05)
    lstm = ModelConfig(cell="lstm", embedding=8, hidden=16, init_scale=0.05, forget_bias=5.0)
    r = gradient_flow(init_params(30, rnn, 0), rnn, x, y)
    l = gradient_flow(init_params(30, lstm, 0), lstm, x, y)
    assert r["decay_per_step"] < 0.5 < 0.9 < l["decay_per_step"]
    assert l["grad_c"][30] > 1e3 * r["grad_h"][30]
    assert l["forget_gate_mean"] == pytest.approx(1 / (1 + np.exp(-5)), abs=0.01)
    r["label"], l["label"] = "rnn", "lstm"
    write_csv([r, l], tmp_path / "g.csv")
    rows = list(csv.DictReader(open(tmp_path / "g.csv")))
    assert list(rows[0]) == ["cell", "distance", "grad_h_norm", "grad_c_norm"]
    assert len(rows) == 80 and rows[0]["grad_c_norm"] == "" and rows[40]["grad_c_norm"] != ""


@pytest.mark.slow
def test_the_docs_gradient_flow_table_is_what_the_documented_command_prints(tmp_path):
    """docs/model.md's table for `symlstm gradflow --config configs/tiny.yaml`, against a fresh run
    of that command (3 significant digits, as printed)."""
    import re
    import subprocess
    import sys

    from conftest import ROOT

    doc = (ROOT / "docs" / "model.md").read_text(encoding="utf-8")
    table = doc[doc.index("`symlstm gradflow --config configs/tiny.yaml`"):]
    want = {m[0]: [float(v) for v in m[1:6]] for m in
            re.findall(r"^\| (untrained \w+) \| (\S+) \| (\S+) \| (\S+) \| (\S+) \| (\S+) \|", table, re.M)}
    proc = subprocess.run([sys.executable, "-m", "symlstm", "gradflow", "--config", "configs/tiny.yaml",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    got = {f"{m[0]} {m[1]}": [float(v) for v in m[2:7]] for m in
           (line.split() for line in proc.stdout.splitlines() if line.startswith("untrained"))}
    assert set(want) == set(got) == {"untrained rnn", "untrained gru", "untrained lstm"}
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=2e-2, abs=1e-30), name


def test_the_probe_names_the_cells_it_takes_apart(tmp_path):
    from symlstm.config import load_config
    from symlstm.errors import InputError
    from symlstm.tools.gradflow import prepare

    for cell, what in (("mogrifier", "is a cell whose step the probe does not take apart"), ("lsmt", "is not a cell")):
        with pytest.raises(InputError, match=f"'{cell}' {what}; choose among lstm, gru, rnn"):
            prepare(load_config(), tmp_path, cells=(cell,), random=True)
