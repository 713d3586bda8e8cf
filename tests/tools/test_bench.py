"""The benchmark's arithmetic and table, and the allocator setting it measures (no timings here)."""
import os
import platform
import re
import subprocess
import sys

import pytest

from symlstm.tools.bench import ISA_CAPS, SHAPES, flops_per_char, format_table, isa_caps


def test_flops_per_char_matches_the_speed_issue():
    # The issue's figures: 11.6 MFLOP per character for A, 40.5 for B (3 × forward).
    assert round(flops_per_char(SHAPES["A"]) / 1e6, 1) == 11.6
    assert round(flops_per_char(SHAPES["B"]) / 1e6, 1) == 40.5


def _row(shape, ours, theirs=None):
    row = {"shape": shape, "symlstm_f32_chars_per_sec": ours, "symlstm_f32_gflops": ours * 1e-5,
           "symlstm_bf16_chars_per_sec": 3 * ours, "symlstm_bf16_gflops": 3e-5 * ours, "bf16_speedup": 3.0}
    if theirs:
        row.update(torch_f32_chars_per_sec=theirs, torch_f32_gflops=theirs * 1e-5, ratio=ours / theirs,
                   torch_bf16_chars_per_sec=4 * theirs, torch_bf16_gflops=4e-5 * theirs, torch_bf16_speedup=4.0,
                   bf16_ratio=0.75 * ours / theirs)
    return row


def test_table_shows_ratios_and_both_allocators():
    r = {"machine": "m", "backend": "jax", "pytensor": "3", "blas": "x", "gemm_peak_gflops": 1.0,
         "allocator": "tuned", "train": [_row("A", 100.0, 200.0)], "train_system_malloc": [_row("A", 50.0, 100.0)]}
    table = format_table(r)
    assert "A     tuned" in table and "A     glibc" in table
    assert table.count(" 0.50 ") == 2 and table.count(" 0.38") == 2  # f32 and bf16 ratios, both rows
    assert table.count("3.00") == 2 and table.count("4.00") == 2  # each library's bf16 speed-up


def test_table_says_when_torch_is_missing():
    r = {"machine": "m", "backend": "jax", "pytensor": "3", "blas": "x", "gemm_peak_gflops": 1.0,
         "allocator": "glibc", "torch": False, "train": [_row("B", 100.0)]}
    table = format_table(r)
    assert "(torch not installed)" in table
    assert "pip install torch" in table


_FAULTS = """
import ctypes, resource
import symlstm.backend.runtime as c
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 100 << 20  # above glibc's mmap threshold; plain malloc, as XLA's buffers (NumPy asks for huge pages)
p = libc.malloc(size); ctypes.memset(p, 1, size); libc.free(p)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
p = libc.malloc(size); ctypes.memset(p, 1, size)
print(c.ALLOCATOR_TUNED, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_tuned_allocator_reuses_freed_pages():
    def run(env):
        out = subprocess.run([sys.executable, "-c", _FAULTS], env=env, capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], int(out[1])
    env = {k: v for k, v in os.environ.items() if k != "SYMLSTM_SYSTEM_MALLOC"}
    tuned, faults_tuned = run(env)
    system, faults_system = run({**env, "SYMLSTM_SYSTEM_MALLOC": "1"})
    assert (tuned, system) == ("True", "False")
    assert faults_system > 20_000  # 100 MB of fresh 4 KiB pages
    assert faults_tuned < 2_000    # the same pages again


def test_table_compares_form_sampling_with_pytorchs_batch_one_loop():
    r = {"machine": "m", "backend": "jax", "pytensor": "3", "blas": "x", "gemm_peak_gflops": 1.0,
         "allocator": "glibc", "train": [_row("A", 100.0, 200.0)],
         "sample": [{"batch": 1, "scan_chars_per_sec": 500.0, "step_chars_per_sec": 200.0,
                     "torch_chars_per_sec": 100.0, "scan_ratio": 5.0}],
         "form_sample": {"form": "wujue", "tones": "strict", "poems": 20, "form_scan_chars_per_sec": 310.0,
                         "form_step_chars_per_sec": 120.0}}
    table = format_table(r)
    assert "compiled form scan 310 (3.10× PyTorch's batch-1 loop); step path 120 (1.20×" in table


def test_table_names_the_recurrence_and_the_output_layers_share():
    row = _row("A", 100.0, 200.0)
    row.update(recurrence="op", symlstm_f32_op_chars_per_sec=100.0, symlstm_f32_scan_chars_per_sec=80.0,
               op_speedup_f32=1.25, symlstm_f32_ms=20.0, output_f32_ms=15.0, output_share_f32=0.75)
    r = {"machine": "m", "backend": "jax", "pytensor": "3", "blas": "x", "gemm_peak_gflops": 1.0,
         "allocator": "glibc", "train": [row]}
    table = format_table(r)
    assert "symlstm's rows above are the LSTM layer Op (model.lstm_op: true" in table
    assert "A     f32            100      80         1.25     20.0      15.0    75%      5.0     0.50" in table
    assert "oneDNN" not in table
    row.update(symlstm_f32_onednn_chars_per_sec=240.0, onednn_speedup_f32=3.0)  # where `make onednn` built it
    table = format_table(r)
    assert "and oneDNN's primitives (its LSTM; its matmul for the bf16 output layer" in table
    assert "A     f32            100      80     240         1.25         3.00     20.0      15.0    75%      5.0     1.20" \
        in table


def test_the_header_names_the_machine_class_its_caps_and_a_path_that_does_not_run_at_a_precision():
    row = _row("B", 100.0, 200.0)
    row.update(recurrence="scan", symlstm_f32_op_chars_per_sec=90.0, symlstm_f32_scan_chars_per_sec=100.0,
               symlstm_f32_onednn_chars_per_sec=120.0, op_speedup_f32=0.9, onednn_speedup_f32=1.2,
               symlstm_f32_ms=20.0, output_f32_ms=10.0, output_share_f32=0.5,
               symlstm_bf16_op_chars_per_sec=250.0, symlstm_bf16_scan_chars_per_sec=300.0, op_speedup_bf16=0.83,
               symlstm_bf16_ms=10.0, output_bf16_ms=5.0, output_share_bf16=0.5)  # no oneDNN bf16 on this class
    row["torch_bf16_not_run"] = "could not create a primitive descriptor for the LSTM forward propagation primitive"
    r = {"machine": "m", "class": "AVX2", "caps": "ONEDNN_MAX_CPU_ISA=AVX2", "backend": "jax", "pytensor": "3",
         "blas": "x", "gemm_peak_gflops": 1.0, "allocator": "glibc", "train": [row],
         "auto": "precision auto: float32 (no bf16 units on this CPU)"}
    table = format_table(r)
    assert table.startswith("machine: m; class AVX2 (capped: ONEDNN_MAX_CPU_ISA=AVX2)\n")
    assert "precision auto: float32 (no bf16 units on this CPU)" in table
    assert "B: torch bf16 not run here (could not create a primitive descriptor for the LSTM forward" in table
    assert "B     bf16           250     300     nan         0.83          nan     10.0       5.0    50%      5.0     0.38" \
        in table  # the fastest path that ran, over PyTorch's bf16


def test_the_caps_named_are_the_ones_in_force(monkeypatch):
    for k in ISA_CAPS:
        monkeypatch.delenv(k, raising=False)
    assert isa_caps() == ""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")  # not a cap
    assert isa_caps() == ""
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2")
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert isa_caps() == "XLA_FLAGS=--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2 ONEDNN_MAX_CPU_ISA=AVX2"


def _main_row(**more):
    return {"config": "configs/poems.yaml", "precision": "float32", "block": 10, "rounds": 8, "steps": 80,
            "budget_sec": 570.0, "paths": ["matrix products: float32 (precision auto: …)", "LSTM layers: the scan"],
            "symlstm_ms": 250.0, "symlstm_ms_by_length": {25: 200.0, 33: 280.0}, "symlstm_steps_in_budget": 2280,
            **more}


def test_the_main_job_is_the_first_row_with_its_paths_steps_and_ratio():
    r = {"machine": "m", "class": "AVX2", "caps": "", "backend": "jax", "pytensor": "3", "blas": "x",
         "main": _main_row(pytorch_ms=300.0, pytorch_ms_by_length={25: 240.0, 33: 330.0},
                           pytorch_steps_in_budget=1900, ratio=1.2)}
    table = format_table(r)  # --main-only: no other rows
    assert "main job: configs/poems.yaml (make train), precision float32; what it runs here:\n  matrix products" in table
    assert "symlstm     250.0   200.0   280.0    2280      1.20" in table
    assert "PyTorch     300.0   240.0   330.0    1900\n" in table + "\n"  # float32: no autocast note
    r["main"] = _main_row(pytorch_not_run="could not create a primitive descriptor")
    assert "PyTorch not run here (could not create a primitive descriptor)" in format_table(r)
    del r["main"]  # --main-only --main-job none: the header alone
    assert format_table(r).splitlines()[-1].startswith("backend: jax")


def test_the_avx2_caps_append_to_xla_flags_already_set():
    from symlstm.backend.machine import AVX2_CAPS, avx2_env

    env = avx2_env({"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "PATH": "/bin"})
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 --xla_cpu_max_isa=AVX2"
    assert env["PATH"] == "/bin" and all(env[k] == v for k, v in AVX2_CAPS.items() if k != "XLA_FLAGS")
    assert avx2_env({})["XLA_FLAGS"] == "--xla_cpu_max_isa=AVX2"


def test_isa_avx2_is_refused_in_one_line_where_the_cpu_is_not_x86(monkeypatch, capsys):
    from symlstm.app.cli import main
    from symlstm.backend import machine

    monkeypatch.setattr(machine, "isa_class", lambda: "aarch64")
    assert main(["bench", "--isa", "avx2", "--main-only"]) == 2
    assert "--isa avx2: this CPU is aarch64" in capsys.readouterr().err


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the caps are x86 instruction sets")
def test_bench_isa_avx2_measures_the_main_job_as_the_avx2_class():
    """The switch reruns the bench capped: the header names the AVX2 class, `precision: auto` takes
    float32 there, and the main job's row is measured (a tiny config, one block, no PyTorch)."""
    env = {k: v for k, v in os.environ.items() if k not in ISA_CAPS}
    proc = subprocess.run([sys.executable, "-m", "symlstm", "bench", "--main-only", "--main-job", "configs/tiny.yaml",
                           "--set", "model.precision=auto", "--isa", "avx2", "--no-torch", "--rounds", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "class AVX2" in proc.stdout and "main job: configs/tiny.yaml (make train), precision float32" in proc.stdout
    assert re.search(r"^symlstm +\d+\.\d", proc.stdout, re.M), proc.stdout
