"""Which path each part takes (`core/paths.py`): capabilities asked, never assumed. `auto` never
runs bf16 on a CPU without bf16 units (read, not timed), never puts oneDNN in a graph where it
cannot run the precision asked, nor on a platform other than the CPU, and then computes exactly
what the plain graph computes; `on` where it cannot run is one line naming the key, the
precision and what is missing. Runs in both legs of `make test`: on the machine as it is (the
missing capability faked) and capped to AVX2 (where it is really missing)."""
import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytest

from symlstm import TrainConfig, compile_model, init_params
from symlstm.backend import machine, onednn
from symlstm.config import ModelConfig
from symlstm.core import onednn_lstm, paths, precision
from symlstm.errors import InputError

from conftest import ROOT

pytestmark = pytest.mark.isa

NO_BF16 = "oneDNN 3.2 has no bf16 lstm on this CPU (its instruction set: avx2, no AVX512_CORE)"


def never(*_, **__):
    raise AssertionError("timed where the CPU's flags already answer")


def test_auto_takes_float32_without_bf16_units_and_never_times_it(monkeypatch):
    monkeypatch.setattr(precision, "bf16_is_faster", never)
    monkeypatch.setattr(machine, "jax_platform", lambda: "cpu")
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "fma"})  # an AVX2 laptop
    assert precision.choose("auto", "jax") == (
        "float32", "precision auto: float32 (no bf16 units on this CPU (none of avx512_bf16, amx_bf16, bf16 among "
                   "its flags))")
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_max_isa=AVX2")  # the same CPU, XLA capped: the CI's second leg
    chosen, why = precision.choose("auto", "jax")
    assert chosen == "float32" and "XLA_FLAGS caps XLA at AVX2" in why
    assert precision.choose("bf16", "jax")[0] == "bf16"  # asked for: kept (XLA emulates it)
    assert precision.resolve("auto", "c") == "float32" and precision.resolve("bf16", "c") == "bf16"


@pytest.mark.parametrize("bf16_ms, chosen", [(6.0, "bf16"), (9.5, "float32"), (12.0, "float32")])
def test_where_both_can_run_auto_decides_by_the_measurement_with_a_margin(monkeypatch, tmp_path, bf16_ms, chosen):
    monkeypatch.setenv("SYMLSTM_JAX_CACHE", str(tmp_path / "jax"))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setattr(machine, "jax_platform", lambda: "cpu")
    monkeypatch.setattr(machine, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    monkeypatch.setattr(machine, "measured", lambda name, key, measure, refresh=False: {"bfloat16": bf16_ms,
                                                                                       "float32": 10.0})
    assert precision.choose("auto", "jax")[0] == chosen  # bf16 only at ≤ 90 % of float32's time


def test_the_measurement_is_warmed_repeated_kept_per_xla_cap_and_remade_on_request(monkeypatch, tmp_path):
    import json

    monkeypatch.setenv("SYMLSTM_JAX_CACHE", str(tmp_path / "jax"))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    faster, figures = precision.bf16_is_faster()
    kept = json.loads((tmp_path / "precision.json").read_text())
    (key, ms), = kept.items()
    assert "XLA cap none" in key and set(ms) == {"bfloat16", "float32"} and all(v > 0 for v in ms.values())
    assert faster == (ms["bfloat16"] <= precision.MARGIN * ms["float32"]) and f"{ms['float32']:.2f}" in figures
    kept[key] = {"bfloat16": 1.0, "float32": 100.0}
    (tmp_path / "precision.json").write_text(json.dumps(kept))
    assert precision.bf16_is_faster()[0] is True  # the kept answer decides ...
    precision.bf16_is_faster(remeasure=True)  # ... until it is measured again (symlstm bench)
    assert json.loads((tmp_path / "precision.json").read_text())[key] != {"bfloat16": 1.0, "float32": 100.0}


def _fake_no_bf16(monkeypatch):
    real = onednn.runs
    monkeypatch.setattr(onednn, "runs", lambda primitive, bf16: (False, NO_BF16) if bf16 else real(primitive, bf16))


@pytest.mark.skipif(not onednn.available()[0], reason=onednn.available()[1] or "-")
def test_onednn_says_truly_what_it_makes_here():
    """`runs` against the primitive itself: where it says no, oneDNN refuses to make it (the LSTM's
    descriptor, the matmul's call); where it says yes, both compute. float32 runs everywhere."""
    import jax.numpy as jnp

    assert onednn.runs("lstm", False) == (True, "") and onednn.runs("matmul", False) == (True, "")
    import jax

    a = jnp.ones((8, 16), jnp.bfloat16)
    x, W, U, b, h0, c0 = (jnp.full(shape, 0.1, jnp.float32) for shape in ((3, 2, 5), (5, 28), (7, 28), (28,),
                                                                             (2, 7), (2, 7)))
    for primitive in ("lstm", "matmul"):
        ok, why = onednn.runs(primitive, True)
        try:  # the primitive itself, at another shape than runs' own: forward and backward
            if primitive == "lstm":
                grads = jax.grad(lambda *v: onednn.lstm_layer(*v, bf16=True)[0].sum(), argnums=(0, 1, 2))(
                    x, W, U, b, h0, c0)
                made = all(np.isfinite(np.asarray(g)).all() for g in grads)
            else:
                made = bool(np.asarray(onednn.matmul(a, a.T)).all())
        except (ValueError, RuntimeError, jax.errors.JaxRuntimeError):  # oneDNN refused it
            made = False
        assert ok == made, why
        assert ok or (why.startswith(f"oneDNN {onednn.version().split()[0]} has no bf16") and onednn.isa() in why)
    capped = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper().startswith("AVX2")
    assert not (capped and onednn.runs("lstm", True)[0])  # the CI's second leg really lacks it


def test_the_gradient_checks_onednn_rows_are_left_out_with_the_reason_where_it_has_no_bf16(monkeypatch):
    from symlstm.tools import gradcheck

    _fake_no_bf16(monkeypatch)
    assert gradcheck.onednn_models() == ([], NO_BF16)
    assert gradcheck.onednn_models("c") == ([], "oneDNN's primitives run on the jax backend only, not c")


@pytest.mark.parametrize("key", ["onednn_lstm", "onednn_matmul"])
def test_on_where_onednn_cannot_run_the_precision_is_one_line_naming_key_precision_and_feature(monkeypatch, key):
    monkeypatch.setattr(machine, "jax_platform", lambda: "cpu")
    monkeypatch.setattr(onednn, "available", lambda: (True, ""))
    monkeypatch.setattr(onednn, "runs", lambda primitive, bf16: (False, NO_BF16.replace("lstm", primitive)))
    cfg = ModelConfig(precision="bf16", **{key: "on"})
    with pytest.raises(InputError, match=f"model.{key} on with precision bf16: oneDNN 3.2 has no bf16 .* no AVX512_CORE"):
        paths.decide(cfg)
    chosen = paths.decide(dataclasses.replace(cfg, **{key: "auto"}))
    assert not chosen.onednn_lstm and not chosen.onednn_matmul
    assert any(f"model.{key} auto: oneDNN 3.2 has no bf16" in line for line in chosen.lines)


def test_on_a_gpu_the_cpu_only_custom_calls_stay_out(monkeypatch):
    monkeypatch.setattr(machine, "jax_platform", lambda: "gpu")
    monkeypatch.setattr(onednn, "runs", lambda *a: pytest.fail("asked oneDNN although JAX compiles for a GPU"))
    chosen = paths.decide(ModelConfig(onednn_lstm="auto", onednn_matmul="auto", precision="bf16"))
    assert (chosen.onednn_lstm, chosen.onednn_matmul) == (False, False)
    assert "JAX compiles for gpu, and oneDNN's custom calls are registered for the CPU only" in chosen.lines[1]
    with pytest.raises(InputError, match="model.onednn_lstm on: JAX compiles for gpu"):
        paths.decide(ModelConfig(onednn_lstm="on"))


def test_on_a_gpu_gradcheck_and_bench_leave_onednn_out(monkeypatch):
    from symlstm.tools import bench, gradcheck

    monkeypatch.setattr(machine, "jax_platform", lambda: "gpu")
    monkeypatch.setattr(bench, "jax_platform", lambda: "gpu")
    assert gradcheck.onednn_models() == ([], "JAX compiles for gpu, and oneDNN's custom calls are registered for "
                                             "the CPU only")
    assert bench.recurrences("jax", "bf16") == bench.recurrences("jax") == ["op", "scan"]


@pytest.mark.parametrize("env, flags, cls", [
    ({}, {"avx2", "avx512f", "avx512_bf16"}, "AVX-512 BF16"),
    ({}, {"avx2", "avx512f"}, "AVX-512"),
    ({}, {"avx2", "fma"}, "AVX2"),
    ({"XLA_FLAGS": "--xla_cpu_max_isa=avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, {"avx2", "avx512f", "avx512_bf16"}, "AVX2"),
    ({"XLA_FLAGS": "--xla_cpu_max_isa=AVX512 --xla_cpu_max_isa=AVX2", "ONEDNN_MAX_CPU_ISA": "avx2"},
     {"avx2", "avx512f", "avx512_bf16"}, "AVX2"),  # the last cap given is XLA's
    ({"XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}, {"avx2", "avx512f"}, "AVX-512"),  # oneDNN not capped
    ({"XLA_FLAGS": "--xla_cpu_max_isa=AVX10_1_512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"},
     {"avx2", "avx512f", "avx512_bf16"}, "AVX-512 BF16"),
])
def test_the_machine_class_reads_the_cpu_and_both_caps(monkeypatch, env, flags, cls):
    for k in ("XLA_FLAGS", "ONEDNN_MAX_CPU_ISA"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(machine.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(machine, "cpu_flags", lambda: flags)
    assert machine.isa_class() == cls
    assert machine.xla_isa_cap() == (env.get("XLA_FLAGS", "").rsplit("=", 1)[-1].upper() if env.get("XLA_FLAGS") else "")
    monkeypatch.setattr(machine.platform, "machine", lambda: "aarch64")
    assert machine.isa_class() == "aarch64"


def test_without_the_library_auto_goes_on_and_on_is_refused(monkeypatch):
    """As on aarch64 or macOS (no oneDNN wheel) or without g++: the library is not there."""
    monkeypatch.setattr(onednn, "LIBRARY", ROOT / "nowhere" / "_lstm_ffi.so")
    onednn._library.cache_clear()
    onednn.runs.cache_clear()
    try:
        assert onednn.available() == (False, "_lstm_ffi.so is not built (make onednn)")
        chosen = paths.decide(ModelConfig(onednn_lstm="auto", onednn_matmul="auto", precision="bf16"))
        assert not chosen.onednn_lstm and "_lstm_ffi.so is not built" in chosen.lines[1]
        with pytest.raises(InputError, match="model.onednn_lstm: oneDNN is not available here"):
            paths.decide(ModelConfig(onednn_lstm="on"))
    finally:
        onednn._library.cache_clear()
        onednn.runs.cache_clear()


def _train_step(cfg, seed=3):
    """Loss, gradient norm and parameters after one AdamW step of a 2-layer LSTM on a padded batch."""
    rng = np.random.default_rng(seed)
    V, T, B = 40, 6, 3
    x = rng.integers(4, V, (T, B)).astype(np.int32)
    y = rng.integers(4, V, (T, B)).astype(np.int32)
    mask = np.ones((T, B), np.float32)
    mask[4:, 1:] = 0  # padded at the end of rows, as poem batches are
    m = compile_model(init_params(V, cfg, 1), cfg, TrainConfig(optimizer="adam", weight_decay=0.1), seed=5)
    loss, norm, _, _ = m.train_step(x, y, mask, *m.zero_state(B), lr=0.01)
    return m, loss, norm, m.get_params()


@pytest.mark.parametrize("precision_", ["bf16", "float32"])
def test_where_onednn_cannot_run_auto_trains_exactly_as_the_plain_graph(monkeypatch, precision_):
    """The fallback: with oneDNN's bf16 kernels absent (faked here; really absent under the AVX2 cap)
    `auto`'s training graph holds no oneDNN op, and its loss, gradient norm and updated parameters
    are the plain graph's, bit for bit."""
    if precision_ == "bf16":
        _fake_no_bf16(monkeypatch)
    base = ModelConfig(embedding=8, hidden=12, num_layers=2, dropout_hidden=0.2, weight_dropout=0.2,
                       precision=precision_)
    auto = dataclasses.replace(base, onednn_lstm="auto", onednn_matmul="auto")
    m, loss, norm, params = _train_step(auto)
    assert m.paths.onednn_lstm == (precision_ == "float32" and onednn.runs("lstm", False)[0])
    graph = m._fns[("train", (6, 3))].maker.fgraph.outputs
    assert onednn_lstm.count(graph) == (2 if m.paths.onednn_lstm else 0)
    if m.paths.onednn_lstm:
        return  # float32 through oneDNN: its equality with the plain graph is tests/core/test_onednn_lstm.py's
    _, loss0, norm0, params0 = _train_step(base)
    assert (loss, norm) == (loss0, norm0)
    assert all(np.array_equal(params[k], params0[k]) for k in params)


def test_a_run_that_dies_before_its_first_step_does_not_block_its_retry(small_corpus, tmp_path, monkeypatch):
    from symlstm.config import load_config
    from symlstm.core.compiled import CompiledModel
    from symlstm.run.train import train

    from conftest import tiny_raw

    real = CompiledModel.warm_up
    monkeypatch.setattr(CompiledModel, "warm_up", lambda *a: (_ for _ in ()).throw(RuntimeError("died compiling")))
    cfg = load_config(raw=tiny_raw(max_steps=2, eval_every=2))
    with pytest.raises(RuntimeError, match="died compiling"):
        train(cfg, tmp_path / "r", small_corpus, log=lambda *_: None, progress=False)
    assert not (tmp_path / "r" / "last.h5").exists()
    monkeypatch.setattr(CompiledModel, "warm_up", real)
    lines = []
    assert train(cfg, tmp_path / "r", small_corpus, log=lines.append, progress=False)["step"] == 2  # no --overwrite
    assert lines[1].startswith("matrix products: float32 (model.precision float32)")
    assert lines[2].startswith("LSTM layers: the scan, float32 products through XLA (model.onednn_lstm off)")


def _cli(*args, **env):
    return subprocess.run([sys.executable, "-m", "symlstm", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **env}, timeout=300)


@pytest.mark.skipif(not onednn.available()[0], reason=onednn.available()[1] or "-")
def test_the_cli_under_the_avx2_cap_trains_bf16_with_auto_and_refuses_on_in_one_line(tmp_path):
    """The AVX2 class on any x86 machine: oneDNN capped (ONEDNN_MAX_CPU_ISA=AVX2) makes no bf16
    LSTM. bf16 asked with `auto` trains (the first lines say which path and why); `on` is one line."""
    cap = {"ONEDNN_MAX_CPU_ISA": "AVX2", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}
    keys = ["--set", "model.precision=bf16", "--set", "train.max_steps=2", "--set", "train.eval_every=2",
            "--no-progress"]
    proc = _cli("train", "--config", "configs/tiny.yaml", "--out", str(tmp_path / "a"), "--set",
                "model.onednn_lstm=auto", "--set", "model.onednn_matmul=auto", *keys, **cap)
    assert proc.returncode == 0, proc.stderr[-2000:]
    v = onednn.version().split()[0]
    assert f"LSTM layers: the scan, bf16 products through XLA (model.onednn_lstm auto: oneDNN {v} has no bf16 lstm " \
           "on this CPU (its instruction set: avx2, no AVX512_CORE))" in proc.stdout
    proc = _cli("train", "--config", "configs/tiny.yaml", "--out", str(tmp_path / "b"), "--set",
                "model.onednn_lstm=on", *keys, **cap)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.strip() == (f"symlstm train: error: model.onednn_lstm on with precision bf16: oneDNN {v} has no bf16 lstm on "
                                   "this CPU (its instruction set: avx2, no AVX512_CORE); use auto (it goes on "
                                   "without oneDNN) or precision float32")
    assert not (tmp_path / "b").exists()  # refused before anything was written
