"""`symlstm bench`: training and sampling throughput against PyTorch, measured in one run.

Owns the benchmark shapes (A and B of the speed issue), the timing loops and the table. PyTorch is
optional: without it the PyTorch columns say so. Results are returned as data; the CLI prints them.
"""
import json
import os
import subprocess
import sys
import time

import numpy as np

from .compiled import compile_model
from .runtime import ALLOCATOR_TUNED
from .config import ModelConfig, TrainConfig
from .model import init_params

SHAPES = {
    "A": dict(V=6000, E=128, H=256, L=1, T=64, B=32),
    "B": dict(V=6000, E=256, H=512, L=2, T=64, B=64),
}


def flops_per_char(s) -> float:
    """Training FLOPs per character: 3 × (forward), forward = 2(E+H)4H per layer + 2HV."""
    fwd = sum(2 * ((s["E"] if l == 0 else s["H"]) + s["H"]) * 4 * s["H"] for l in range(s["L"])) + 2 * s["H"] * s["V"]
    return 3.0 * fwd


def _data(s, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(4, s["V"], (s["T"], s["B"])).astype(np.int32)
    return x, np.roll(x, -1, axis=0), np.ones((s["T"], s["B"]), np.float32)


def _symlstm(s, backend):
    cfg = ModelConfig(embedding=s["E"], hidden=s["H"], num_layers=s["L"], backend=backend)
    return compile_model(init_params(s["V"], cfg, 0), cfg, TrainConfig(optimizer="sgd", learning_rate=0.01, grad_clip=0))


def _torch(s):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(s["V"], s["E"])
            self.rnn = torch.nn.LSTM(s["E"], s["H"], num_layers=s["L"])
            self.out = torch.nn.Linear(s["H"], s["V"])

        def forward(self, x, state):
            h, state = self.rnn(self.emb(x), state)
            return self.out(h), state

    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    return torch, net, opt


def train_speed(shape: str, steps: int = 20, backend: str = "jax", with_torch: bool = True, warmup: int = 3) -> dict:
    """chars/s of one training step (forward + backward + SGD update), state carried between
    steps; symlstm and PyTorch alternate step by step so both see the same machine load."""
    s = SHAPES[shape]
    x, y, mask = _data(s)
    m = _symlstm(s, backend)
    h, c = m.zero_state(s["B"])
    t0 = time.perf_counter()
    _, _, h, c = m.train_step(x, y, mask, h, c)
    first_call = time.perf_counter() - t0
    times = {"symlstm": [], "torch": []}
    tt = None
    if with_torch:
        torch, net, opt = _torch(s)
        tx, ty = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
        tstate = None
        loss_fn = torch.nn.CrossEntropyLoss()

        def torch_step(state):
            opt.zero_grad()
            logits, state = net(tx, state)
            loss = loss_fn(logits.reshape(-1, s["V"]), ty.reshape(-1))
            loss.backward()
            opt.step()
            return tuple(z.detach() for z in state)
        tt = torch_step
    for i in range(warmup + steps):
        t0 = time.perf_counter()
        loss, _, h, c = m.train_step(x, y, mask, h, c)  # returns NumPy: the work is done
        if i >= warmup:
            times["symlstm"].append(time.perf_counter() - t0)
        if tt is not None:
            t0 = time.perf_counter()
            tstate = tt(tstate)
            if i >= warmup:
                times["torch"].append(time.perf_counter() - t0)
    chars = s["T"] * s["B"]
    out = {"shape": shape, **s, "backend": backend, "first_call_sec": first_call,
           "flops_per_char": flops_per_char(s),
           "symlstm_chars_per_sec": chars / float(np.median(times["symlstm"]))}
    out["symlstm_gflops"] = out["symlstm_chars_per_sec"] * out["flops_per_char"] / 1e9
    if times["torch"]:
        out["torch_chars_per_sec"] = chars / float(np.median(times["torch"]))
        out["torch_gflops"] = out["torch_chars_per_sec"] * out["flops_per_char"] / 1e9
        out["ratio"] = out["symlstm_chars_per_sec"] / out["torch_chars_per_sec"]
    return out


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def sample_speed(shape: str, batch: int, length: int = 200, backend: str = "jax", with_torch: bool = True,
                 repeats: int = 5) -> dict:
    """chars/s generating `length` characters per row (median of `repeats` calls after one more):
    the compiled scan, the step function in a Python loop, and PyTorch's step loop (multinomial
    sampling)."""
    s = SHAPES[shape]
    m = _symlstm(s, backend)
    rng = np.random.default_rng(0)
    first = np.full(batch, 2, np.int32)
    h, c = m.zero_state(batch)
    noise = -np.log(-np.log(rng.random((length, batch, s["V"])).clip(1e-12, 1 - 1e-7))).astype(np.float32)
    banned = np.zeros(s["V"], np.float32)
    m.generate(first, h, c, noise, 1.0, banned)  # compile
    scan_t = _median_time(lambda: m.generate(first, h, c, noise, 1.0, banned), repeats)

    def step_loop():
        tok, hh, cc = first.copy(), h, c
        for _ in range(length):
            logp, hh, cc = m.step(tok, hh, cc)
            tok = np.argmax(logp + noise[_], axis=1).astype(np.int32)
    step_loop()
    step_t = _median_time(step_loop, repeats)
    out = {"shape": shape, "batch": batch, "length": length,
           "scan_chars_per_sec": batch * length / scan_t, "step_chars_per_sec": batch * length / step_t}
    if with_torch:
        torch, net, _ = _torch(s)
        with torch.no_grad():
            def torch_loop():
                tok, state = torch.full((1, batch), 2, dtype=torch.long), None
                for _ in range(length):
                    logits, state = net(tok, state)
                    tok = torch.multinomial(torch.softmax(logits[0], -1), 1).T
            torch_loop()
            out["torch_chars_per_sec"] = batch * length / _median_time(torch_loop, repeats)
        out["scan_ratio"] = out["scan_chars_per_sec"] / out["torch_chars_per_sec"]
    return out


def gemm_peak(n: int = 2048, repeats: int = 5) -> float:
    """float32 GEMM GFLOP/s of an n×n product through the backend's own BLAS (JAX: XLA's)."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).random((n, n), dtype=np.float32))
    f = jax.jit(lambda u: u @ u)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


_START = """
import time; t0 = time.perf_counter()
import numpy as np
from symlstm.bench import SHAPES, _data, _symlstm
s = SHAPES["B"]; m = _symlstm(s, {backend!r}); x, y, mask = _data(s)
m.train_step(x, y, mask, *m.zero_state(s["B"]))
t1 = time.perf_counter()
m.train_step(x, y, mask, *m.zero_state(s["B"]))
print(t1 - t0, time.perf_counter() - t1)
"""


def _child(code: str, env: dict) -> str:
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError((proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1])
    return proc.stdout.strip().splitlines()[-1]


def start_times(backend: str = "jax", cache_dir: str | None = None) -> dict:
    """Seconds from a fresh interpreter to the end of the first training step of shape B, with an
    empty compilation cache (cold) and again with the cache the first run filled (warm); and how
    long a second step takes, which is the part of those seconds that is the step's own work."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        env = {"SYMLSTM_JAX_CACHE": cache_dir or tmp}
        cold, _ = map(float, _child(_START.format(backend=backend), env).split())
        warm, step = map(float, _child(_START.format(backend=backend), env).split())
    return {"cold_start_sec": cold, "warm_start_sec": warm, "step_sec": step}


_TRAIN = """
import json
from symlstm.bench import SHAPES, train_speed
print(json.dumps([train_speed(k, {steps}, {backend!r}, {with_torch}) for k in SHAPES]))
"""


def train_speed_system_malloc(steps: int, backend: str, with_torch: bool) -> list:
    """train_speed of both shapes in a fresh process with glibc's malloc left as it is
    (SYMLSTM_SYSTEM_MALLOC=1): how both libraries run without the allocator setting."""
    code = _TRAIN.format(steps=steps, backend=backend, with_torch=with_torch)
    return json.loads(_child(code, {"SYMLSTM_SYSTEM_MALLOC": "1"}))


def backend_info(backend: str) -> dict:
    import pytensor

    info = {"backend": backend, "pytensor": pytensor.__version__}
    if backend == "jax":
        import jax
        info["blas"] = (f"none: XLA's own CPU kernels (YNNPACK, Eigen) via jax {jax.__version__}, "
                        f"{jax.device_count()} device(s)")
    else:
        info["blas"] = pytensor.config.blas__ldflags or "none found: NumPy C-API fallback"
    return info


def run_all(backend: str = "jax", steps: int = 20, with_torch: bool | None = None, sampling: bool = True,
            starts: bool = True, system_malloc: bool = True) -> dict:
    if with_torch is None:
        try:
            import torch  # noqa: F401
            with_torch = True
        except ImportError:
            with_torch = False
    result = {"machine": machine(), **backend_info(backend), "torch": with_torch}
    if starts:
        result.update(start_times(backend))
    result["gemm_peak_gflops"] = gemm_peak()
    result["train"] = [train_speed(k, steps, backend, with_torch) for k in SHAPES]
    result["allocator"] = "tuned" if ALLOCATOR_TUNED else "glibc"
    if system_malloc and ALLOCATOR_TUNED:
        result["train_system_malloc"] = train_speed_system_malloc(steps, backend, with_torch)
    if sampling:
        result["sample"] = [sample_speed("A", b, backend=backend, with_torch=with_torch) for b in (1, 32)]
    return result


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def format_table(r: dict) -> str:
    lines = [f"machine: {r['machine']}", f"backend: {r['backend']} (PyTensor {r['pytensor']}); BLAS: {r['blas']}",
             f"float32 GEMM peak (2048², same run): {r['gemm_peak_gflops']:.0f} GFLOP/s"]
    if not r.get("torch", True):
        lines.append("PyTorch: not run (not installed, or --no-torch); for its columns: .venv/bin/pip install "
                     "torch --index-url https://download.pytorch.org/whl/cpu")
    if "cold_start_sec" in r:
        lines.append(f"start to the end of the first training step, shape B (fresh interpreter each): "
                     f"cold {r['cold_start_sec']:.1f} s, warm {r['warm_start_sec']:.1f} s, "
                     f"of which the step itself {r['step_sec']:.1f} s")
    lines += ["", "training (forward + backward + SGD), float32, median step",
              "malloc: tuned = symlstm's allocator setting, in force for both libraries; glibc = untouched",
              f"{'shape':<6}{'malloc':<8}{'symlstm chars/s':>16}{'GFLOP/s':>9}{'PyTorch chars/s':>17}{'GFLOP/s':>9}"
              f"{'ratio':>7}"]
    rows = [(t, r.get("allocator", "glibc")) for t in r["train"]]
    rows += [(t, "glibc") for t in r.get("train_system_malloc", [])]
    for t, malloc in sorted(rows, key=lambda row: row[0]["shape"]):
        torch_part = (f"{t['torch_chars_per_sec']:>17.0f}{t['torch_gflops']:>9.0f}{t['ratio']:>7.2f}"
                      if "ratio" in t else f"{'(torch not installed)':>33}")
        lines.append(f"{t['shape']:<6}{malloc:<8}{t['symlstm_chars_per_sec']:>16.0f}{t['symlstm_gflops']:>9.0f}"
                     + torch_part)
    if r.get("sample"):
        lines += ["", "sampling, shape A, chars/s",
                  f"{'batch':<6}{'compiled scan':>14}{'step loop':>11}{'PyTorch loop':>14}{'scan/PyTorch':>13}"]
        for sp in r["sample"]:
            torch_part = (f"{sp['torch_chars_per_sec']:>14.0f}{sp['scan_ratio']:>13.2f}" if "scan_ratio" in sp
                          else f"{'-':>14}{'-':>13}")
            lines.append(f"{sp['batch']:<6}{sp['scan_chars_per_sec']:>14.0f}{sp['step_chars_per_sec']:>11.0f}" + torch_part)
    return "\n".join(lines)


def as_json(r: dict) -> str:
    return json.dumps(r, indent=1)
