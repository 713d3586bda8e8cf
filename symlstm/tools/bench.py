"""`symlstm bench`: training and sampling throughput against PyTorch, measured in one run.

First the main job (`main_job`: `make train`'s own step against PyTorch's same recipe, each library
in a process of its own, and with `--pieces` the step piece by piece), then the benchmark shapes (A
and B of the speed issue). Owns the shapes, the timing loops and the table. PyTorch is optional:
without it the PyTorch columns say so. Results are returned as data; the CLI prints them.
"""
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from symlstm.backend import onednn
from symlstm.backend.machine import AVX2_CAPS, bf16_units, isa_class, jax_platform, machine
from symlstm.backend.runtime import ALLOCATOR_TUNED
from symlstm.config import MAIN_JOB, ModelConfig, TrainConfig
from symlstm.core.compiled import compile_model
from symlstm.core.model import init_params
from symlstm.core.precision import bf16_is_faster, choose
from symlstm.run.train import epoch_batches

DATA = os.path.join("data", "tang_quatrains.txt")  # the shipped poems, relative to the project root (the working directory)
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


def _symlstm(s, backend, precision="float32", **keys):
    cfg = ModelConfig(embedding=s["E"], hidden=s["H"], num_layers=s["L"], backend=backend, precision=precision)
    cfg = dataclasses.replace(cfg, **keys)
    return compile_model(init_params(s["V"], cfg, 0), cfg, TrainConfig(optimizer="sgd", learning_rate=0.01, grad_clip=0))


def _output_layer(s, backend, precision):
    """The output layer and the loss alone, forward and backward, as a compiled function of the
    top layer's states: what the training step spends outside the recurrence's share."""
    import pytensor
    import pytensor.tensor as pt

    from symlstm.backend.runtime import get_mode
    from symlstm.core import model as M

    cfg = ModelConfig(embedding=s["E"], hidden=s["H"], backend=backend, precision=precision)
    rng = np.random.default_rng(0)
    params = {k: pytensor.shared(rng.uniform(-0.05, 0.05, shape).astype(np.float32))
              for k, shape in (("output/W", (s["H"], s["V"])), ("output/b", (s["V"],)))}
    top = pt.tensor("top", dtype="float32", shape=(s["T"], s["B"], s["H"]))
    y = pt.tensor("y", dtype="int32", shape=(s["T"], s["B"]))
    loss = M.token_nll(M.output_logits(params, cfg, top, precision), y).mean()
    fn = pytensor.function([top, y], [loss] + pytensor.grad(loss, [top] + list(params.values())),
                           mode=get_mode(backend))
    h = rng.uniform(-1, 1, (s["T"], s["B"], s["H"])).astype(np.float32)
    _, y_ = _data(s)[:2]

    def run(state):
        for v in fn(h, y_):
            np.asarray(v)  # to NumPy: the work is done
        return state
    return run


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


def _torch_step(s, x, y, bf16: bool):
    """One PyTorch training step (SGD), float32 or under `torch.autocast("cpu", torch.bfloat16)`
    (bf16 GEMMs through oneDNN, float32 master weights: PyTorch's own mixed precision)."""
    torch, net, opt = _torch(s)
    tx, ty = torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step(state):
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits, state = net(tx, state)
            loss = loss_fn(logits.reshape(-1, s["V"]).float(), ty.reshape(-1))
        loss.backward()
        opt.step()
        return tuple(z.detach().float() for z in state)
    return step


PATHS = ("float32", "bf16")  # symlstm's precisions, each measured in every run
# the recurrence's paths, as model keys: the LSTM layer Op, the plain scan's autodiff, oneDNN's primitives
# (its LSTM, and its matmul for the bf16 output layer)
RECURRENCES = {"op": {"lstm_op": True, "onednn_lstm": "off"}, "scan": {"lstm_op": False, "onednn_lstm": "off"},
               "onednn": {"onednn_lstm": "on", "onednn_matmul": "auto"}}


def recurrences(backend: str, precision: str = "float32") -> list[str]:
    """The recurrence paths this machine can run at `precision`: oneDNN's only on JAX where oneDNN
    makes an LSTM of that precision here (`onednn.runs`: built, and bf16 only where its CPU has it)."""
    return [k for k in RECURRENCES if k != "onednn"
            or (backend == "jax" and jax_platform() == "cpu" and onednn.runs("lstm", precision == "bf16")[0])]


def train_speed(shape: str, steps: int = 20, backend: str = "jax", with_torch: bool = True, warmup: int = 3) -> dict:
    """chars/s of one training step (forward + backward + SGD update), state carried between
    steps, for symlstm in float32 and bf16, each through every path of `recurrences` (the LSTM
    layer Op, the plain scan, oneDNN's primitive where built), and PyTorch float32 and autocast
    bf16, all taking turns step by step so that they see the same machine load; and, in the same
    turns, the output layer and loss alone (forward and backward) at each precision, whose share of
    the step says what the recurrence's is."""
    s = SHAPES[shape]
    x, y, mask = _data(s)
    runners, first_call = {}, {}
    for precision in PATHS if backend == "jax" else ("float32",):  # elsewhere bf16 is NumPy's perform
        for path in recurrences(backend, precision):
            m = _symlstm(s, backend, precision, **RECURRENCES[path])
            state = m.zero_state(s["B"])
            t0 = time.perf_counter()
            state = m.train_step(x, y, mask, *state)[2:]
            first_call.setdefault(precision, time.perf_counter() - t0)

            def run(state, m=m):
                return m.train_step(x, y, mask, *state)[2:]  # returns NumPy: the work is done
            runners[f"symlstm {precision} {path}"] = (run, state)
        runners[f"output {precision}"] = (_output_layer(s, backend, precision), None)
    skipped = {}
    if with_torch:
        for bf16 in (False, True):
            step = _torch_step(s, x, y, bf16)
            try:  # asked, not assumed: PyTorch's bf16 LSTM is oneDNN's, which a capped or AVX2 CPU may lack
                step(None)
            except RuntimeError as err:
                skipped["torch bf16" if bf16 else "torch float32"] = str(err).splitlines()[0]
                continue
            runners["torch bf16" if bf16 else "torch float32"] = (step, None)
    times = {k: [] for k in runners}
    states = {k: st for k, (_, st) in runners.items()}
    for i in range(warmup + steps):
        for k, (run, _) in runners.items():
            t0 = time.perf_counter()
            states[k] = run(states[k])
            if i >= warmup:
                times[k].append(time.perf_counter() - t0)
    chars = s["T"] * s["B"]
    default = "onednn" if ModelConfig().onednn_lstm == "on" else "op" if ModelConfig().lstm_op else "scan"
    out = {"shape": shape, **s, "backend": backend, "first_call_sec": first_call["float32"],
           "flops_per_char": flops_per_char(s), "recurrence": default,
           **{f"{k.replace(' ', '_')}_not_run": why for k, why in skipped.items()}}
    for k, ts in times.items():
        key = k.replace(" ", "_").replace("float32", "f32")
        out[f"{key}_ms"] = 1000 * float(np.median(ts))
        if not k.startswith("output"):
            out[f"{key}_chars_per_sec"] = chars / float(np.median(ts))
            out[f"{key}_gflops"] = out[f"{key}_chars_per_sec"] * out["flops_per_char"] / 1e9
    for p in ("f32", "bf16"):
        for suffix in ("chars_per_sec", "gflops", "ms"):  # the default path's figures under the plain names
            if f"symlstm_{p}_{default}_{suffix}" in out:
                out[f"symlstm_{p}_{suffix}"] = out[f"symlstm_{p}_{default}_{suffix}"]
        if f"output_{p}_ms" in out:
            out[f"output_share_{p}"] = out[f"output_{p}_ms"] / out[f"symlstm_{p}_ms"]
            for path in recurrences(backend, "bf16" if p == "bf16" else "float32"):
                if path != "scan":
                    out[f"{path}_speedup_{p}"] = (out[f"symlstm_{p}_{path}_chars_per_sec"]
                                                  / out[f"symlstm_{p}_scan_chars_per_sec"])
    bf16 = out.get("symlstm_bf16_chars_per_sec", float("nan"))
    out["bf16_speedup"] = bf16 / out["symlstm_f32_chars_per_sec"]
    if with_torch:
        nan = float("nan")
        for p in ("f32", "bf16"):  # a PyTorch step that did not run here
            out.setdefault(f"torch_{p}_chars_per_sec", nan)
            out.setdefault(f"torch_{p}_gflops", nan)
        out["ratio"] = out["symlstm_f32_chars_per_sec"] / out["torch_f32_chars_per_sec"]
        out["bf16_ratio"] = bf16 / out["torch_bf16_chars_per_sec"]
        out["torch_bf16_speedup"] = out["torch_bf16_chars_per_sec"] / out["torch_f32_chars_per_sec"]
    return out


def main_job(config: str = MAIN_JOB, block: int = 10, rounds: int = 8, with_torch: bool = True,
             root: str = ".", overrides=()) -> dict:
    """`make train`'s step against PyTorch's same recipe (`torch_reference.recipe`), at the
    precision `precision: auto` takes here (PyTorch under autocast where that is bf16): the real
    config, corpus and batches in the order the first epoch takes them (both lengths, as they come),
    each library's step as its training loop times it (symlstm's `train_step` with its dropout draw
    and its results back in NumPy; PyTorch's with its own).

    Each library runs in a process of its own, as each trains in one (`_main_job_worker`): in one
    process the two slowed each other, both, and PyTorch more, so that the bench put symlstm 8–13 %
    ahead where 60 s training runs side by side put it 2–6 % behind (docs/speed.md). The processes
    take turns block by block, `block` consecutive steps over the same batches, `rounds` blocks
    each, the one waiting asleep on its pipe; which goes first alternates. Each compiles and takes
    one step of each length first, untimed, as training does. Returns ms a step (all timed steps),
    per batch length, and the steps a time budget of such steps makes."""
    job = {"config": config, "overrides": list(overrides), "root": root, "block": block, "rounds": rounds}
    workers = {"symlstm": _Worker({**job, "library": "symlstm"})}
    ready = {"symlstm": workers["symlstm"].ready()}  # one after the other: compiling is not timed
    if with_torch:
        workers["PyTorch"] = _Worker({**job, "library": "PyTorch", "bf16": ready["symlstm"]["precision"] == "bf16"})
        ready["PyTorch"] = workers["PyTorch"].ready()
    skipped = {name: r["not_run"] for name, r in ready.items() if "not_run" in r}
    runners = [name for name in workers if name not in skipped]
    times = {name: [] for name in runners}
    try:
        for r in range(rounds):
            for name in runners if r % 2 == 0 else runners[::-1]:
                times[name] += workers[name].ask(r)
    finally:
        for w in workers.values():
            w.close()
    mine = ready["symlstm"]
    out = {"config": config, "precision": mine["precision"], "paths": mine["paths"], "block": block,
           "rounds": rounds, "steps": len(times["symlstm"]), "compile_sec": mine["compile_sec"],
           "budget_sec": mine["budget_sec"], **{f"{k.lower()}_not_run": why for k, why in skipped.items()}}
    for name, ts in times.items():
        key = name.lower()
        out[f"{key}_ms"] = 1000 * sum(t for _, t in ts) / len(ts)
        out[f"{key}_ms_by_length"] = {T: 1000 * float(np.median([t for T_, t in ts if T_ == T]))
                                     for T in sorted({T for T, _ in ts})}
        out[f"{key}_steps_in_budget"] = int(out["budget_sec"] * 1000 / out[f"{key}_ms"])
    if "pytorch_ms" in out:
        out["ratio"] = out["pytorch_ms"] / out["symlstm_ms"]  # > 1: symlstm faster
    return out


def _main_job_setup(config: str, overrides, root: str, model: bool = True):
    """The main job as training starts it: (config, vocabulary size, the first epoch's batches, and
    with `model` symlstm's compiled model of the config's seed)."""
    from symlstm.config import load_config
    from symlstm.corpus.loading import build_corpus

    cfg = load_config(config, list(overrides))
    corpus = build_corpus(cfg.data, Path(root))
    V = len(corpus.vocab)
    m = compile_model(init_params(V, cfg.model, cfg.train.seed), cfg.model, cfg.train, seed=cfg.train.seed) \
        if model else None
    return cfg, V, epoch_batches(cfg, corpus, 0), m


class _Worker:
    """A child process that runs one library's main-job steps when asked (`_main_job_worker`);
    one JSON line each way per request, on its stdin and stdout."""

    def __init__(self, job: dict):
        code = "from symlstm.tools.bench import _main_job_worker; _main_job_worker()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        self._send(job)

    def _send(self, message):
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def _receive(self):
        for line in self.proc.stdout:  # a library may print to stdout: only the marked lines are answers
            if line.startswith("@bench "):
                return json.loads(line[len("@bench "):])
        raise RuntimeError(f"the main job's worker stopped (exit code {self.proc.wait()}); its error is above")

    def ready(self) -> dict:
        return self._receive()

    def ask(self, block: int) -> list:
        self._send(block)
        return [tuple(t) for t in self._receive()]

    def close(self):
        if self.proc.poll() is None:
            self._send(None)
            self.proc.wait(timeout=60)


def _main_job_worker():
    """The child of `_Worker`: reads the job, builds one library's step on the main job's batches,
    takes one untimed step of each length the timed blocks hold and says it is ready, then runs
    block after block when asked (None: stop)."""
    from symlstm.core import paths

    def say(message):
        print("@bench " + json.dumps(message), flush=True)

    job = json.loads(sys.stdin.readline())
    cfg, V, batches, m = _main_job_setup(job["config"], job["overrides"], job["root"], job["library"] == "symlstm")
    lr, block = cfg.train.learning_rate, job["block"]
    about = {}
    if m is not None:
        about = {"precision": m.cfg.precision, "paths": list(paths.decide(cfg.model).lines),
                 "budget_sec": cfg.train.time_budget or 570.0}

        def run(x, y, mask):
            m.train_step(x, y, mask, *m.zero_state(x.shape[1]), lr)  # loss, norm to floats, hT, cT to NumPy
    else:
        import torch

        from symlstm.tools.torch_reference import recipe
        torch.manual_seed(cfg.train.seed)
        _, step, _ = recipe(torch, cfg, V, job["bf16"])

        def run(x, y, mask):
            step(x, y, mask, lr).item()
    start, seen = time.perf_counter(), set()
    for i in range(job["rounds"] * block):  # symlstm compiles here, PyTorch makes its primitives
        x, y, mask = batches[i % len(batches)]
        if x.shape not in seen:
            seen.add(x.shape)
            try:
                run(x, y, mask)
            except RuntimeError as err:  # PyTorch's bf16 LSTM is oneDNN's, which a capped or AVX2 CPU may lack
                say({"not_run": str(err).splitlines()[0]})
                return
    say({**about, "compile_sec": time.perf_counter() - start})
    while (r := json.loads(sys.stdin.readline() or "null")) is not None:
        took = []
        for i in range(r * block, (r + 1) * block):
            x, y, mask = batches[i % len(batches)]
            t0 = time.perf_counter()
            run(x, y, mask)
            took.append((x.shape[0], time.perf_counter() - t0))
        say(took)


def main_job_pieces(config: str = MAIN_JOB, repeats: int = 15, with_torch: bool = True, root: str = ".",
                    overrides=()) -> dict:
    """Where the main job's step goes, piece by piece, for symlstm and PyTorch at the same precision,
    on one batch of each length (the first epoch's first of each), medians of `repeats` calls taking
    turns piece by piece. Pieces as differences of nested parts of the step:

        step       the training step as the loop times it (symlstm: `train_step`)
        compiled   symlstm: its compiled function alone, masks drawn beforehand  → host = step − compiled
        gradients  loss and gradients, no clipping or update                     → optimizer = above − gradients
        output     the output layer and loss alone, forward and backward, from the top layer's states
                                                                                 → recurrence = gradients − output
    (PyTorch: step, then forward and backward, then the output layer and loss alone.)"""
    import pytensor
    import pytensor.tensor as pt

    from symlstm.core import model as M
    from symlstm.core.compiled import build_param_fns, draw_masks
    from symlstm.corpus.batching import batch_shapes

    cfg, V, batches, m = _main_job_setup(config, overrides, root)
    firsts = {}
    for i in range(min(len(batches), 200)):
        firsts.setdefault(batches[i][0].shape, batches[i])
    m.warm_up(batch_shapes(list(firsts.values())))
    mcfg = m.cfg
    shapes = {k: v.get_value().shape for k, v in m.params.items()}
    runners = {}
    for (T, B), (x, y, mask) in sorted(firsts.items()):
        h0, c0 = m.zero_state(B)
        keep = draw_masks(np.random.default_rng(0), mcfg, V, T, B)
        fn = m._fn("train", (T, B), None)
        _, grads = build_param_fns(shapes, mcfg, m.mode, (T, B), masks=True)
        values = [v.get_value() for v in m.params.values()]
        top = pt.tensor("top", dtype="float32", shape=(T, B, mcfg.hidden))
        yy = pt.tensor("y", dtype="int32", shape=(T, B))
        mm = pt.tensor("mask", dtype="float32", shape=(T, B))
        out_params = {k: v for k, v in m.params.items() if k.startswith("output/") or (mcfg.tie_weights and k == "embedding")}
        loss = (M.token_nll(M.output_logits(m.params, mcfg, top, mcfg.precision), yy) * mm).sum() / mm.sum()
        out_fn = pytensor.function([top, yy, mm], [loss] + pytensor.grad(loss, [top] + list(out_params.values())),
                                   mode=m.mode)
        tops = np.random.default_rng(0).uniform(-1, 1, (T, B, mcfg.hidden)).astype(np.float32)
        lr32 = np.asarray(0.0, mcfg.dtype)  # lr 0: the parameters stay as they are between repeats
        runners[("symlstm", T, "step")] = lambda x=x, y=y, mask=mask, h0=h0, c0=c0: m.train_step(x, y, mask, h0, c0, 0.0)
        runners[("symlstm", T, "compiled")] = lambda fn=fn, a=(x, y, mask, h0, c0, lr32, *keep): [
            np.asarray(o) for o in fn(*a)]
        runners[("symlstm", T, "gradients")] = lambda g=grads, a=(*values, x, y, mask, h0, c0, *keep): [
            np.asarray(o) for o in g(*a)]
        runners[("symlstm", T, "output")] = lambda f=out_fn, a=(tops, y, mask): [np.asarray(o) for o in f(*a)]
    if with_torch:
        import torch

        from symlstm.tools.torch_reference import mean_loss, recipe
        bf16 = mcfg.precision == "bf16"
        net, step, _ = recipe(torch, cfg, V, bf16)
        F = torch.nn.functional
        for (T, B), (x, y, mask) in sorted(firsts.items()):
            def fwd_bwd(x=x, y=y, mask=mask):
                net.zero_grad()
                mean_loss(torch, net, x, y, mask, bf16).backward()

            tops = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (T, B, mcfg.hidden)).astype(np.float32))
            ty, tm = torch.from_numpy(y.astype(np.int64)).reshape(-1), torch.from_numpy(mask).reshape(-1)

            def output(tops=tops, ty=ty, tm=tm):
                h = tops.clone().requires_grad_()
                net.zero_grad()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                    z = net.out(h if net.proj is None else net.proj(h))
                    nll = F.cross_entropy(z.reshape(-1, z.shape[-1]).float(), ty, reduction="none")
                    loss = (nll * tm).sum() / tm.sum()
                loss.backward()
            runners[("PyTorch", T, "step")] = lambda x=x, y=y, mask=mask: step(x, y, mask, 0.0).item()
            runners[("PyTorch", T, "gradients")] = fwd_bwd
            runners[("PyTorch", T, "output")] = output
    for run in runners.values():  # warm: PyTorch builds its primitives on first use
        run()
    times = {k: [] for k in runners}
    for _ in range(repeats):
        for k, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[k].append(time.perf_counter() - t0)
    ms = {k: 1000 * float(np.median(v)) for k, v in times.items()}
    rows = []
    for (lib, T) in sorted({(k[0], k[1]) for k in ms}, key=lambda k: (k[1], k[0] != "symlstm")):
        at = {piece: ms[(lib, T, piece)] for piece in ("step", "compiled", "gradients", "output") if (lib, T, piece) in ms}
        inner = at.get("compiled", at["step"])
        rows.append({"library": lib, "T": T, "step_ms": at["step"], "host_ms": at["step"] - inner if "compiled" in at else None,
                     "optimizer_ms": inner - at["gradients"], "recurrence_ms": at["gradients"] - at["output"],
                     "output_ms": at["output"]})
    return {"config": config, "precision": mcfg.precision, "repeats": repeats, "rows": rows}


def format_pieces(p: dict) -> str:
    lines = [f"the main job's step by piece ({p['config']}, {p['precision']}, median of {p['repeats']}, ms): "
             "host = outside the compiled function (mask draw, checks, results to NumPy); optimizer = clip and update; "
             "recurrence = embedding, LSTM layers and dropout, forward and backward; output = output layer and loss",
             f"{'library':<9}{'T':>4}{'step':>8}{'host':>8}{'optimizer':>11}{'recurrence':>12}{'output':>8}"]
    for r in p["rows"]:
        host = f"{r['host_ms']:>8.1f}" if r["host_ms"] is not None else f"{'-':>8}"
        lines.append(f"{r['library']:<9}{r['T']:>4}{r['step_ms']:>8.1f}{host}{r['optimizer_ms']:>11.1f}"
                     f"{r['recurrence_ms']:>12.1f}{r['output_ms']:>8.1f}")
    return "\n".join(lines)


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


def _bench_vocab(V: int):
    """V tokens of real Han characters (the shipped quatrains' and more from the CJK block), so
    that the form and tone constraints have characters to work on at the benchmark's shape."""
    from symlstm.corpus.loading import read_poems
    from symlstm.vocab import Vocab

    vocab = Vocab.build(read_poems(DATA))
    extra = (chr(cp) for cp in range(0x4E00, 0x9FFF) if chr(cp) not in vocab.stoi)
    return Vocab(vocab.itos + [next(extra) for _ in range(V - len(vocab))])


def form_sample_speed(shape: str = "A", poems: int = 20, backend: str = "jax", form: str = "wujue",
                      tones: str = "strict") -> dict:
    """chars/s writing `poems` poems one at a time (batch 1) under --form --tones, on a vocabulary
    of Han characters of the shape's size: the compiled form scan (`Sampler._in_form`, what
    `symlstm sample --tones strict`, rhyme or off runs at temperature 0.8 or above) against the step path
    (one compiled step per character, the rules in Python: what it ran before, and still runs for
    loose tones, the default, and for ci, templates, beams and greedy search). Each
    poem is one call, tables built included; characters count <eos> as the other paths do."""
    from symlstm.workbench.decode import SampleOptions, Sampler

    s = SHAPES[shape]
    m = _symlstm(s, backend)
    sampler = Sampler(m, _bench_vocab(s["V"]))
    out = {"shape": shape, "form": form, "tones": tones, "poems": poems}
    for path, run in (("form_scan", sampler._in_form), ("form_step", sampler._stepwise)):
        def write(seed):
            poem = run(SampleOptions(num=1, form=form, tones=tones, seed=seed))
            return len(poem[0]["text"]) + 1
        write(0)  # compile
        t0 = time.perf_counter()
        chars = sum(write(seed) for seed in range(1, poems + 1))
        out[f"{path}_chars_per_sec"] = chars / (time.perf_counter() - t0)
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
from symlstm.tools.bench import SHAPES, _data, _symlstm
s = SHAPES["B"]; m = _symlstm(s, {backend!r}, {precision!r}); x, y, mask = _data(s)
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


def start_times(backend: str = "jax", cache_dir: str | None = None, precision: str = "float32") -> dict:
    """Seconds from a fresh interpreter to the end of the first training step of shape B, with an
    empty compilation cache (cold) and again with the cache the first run filled (warm); and how
    long a second step takes, which is the part of those seconds that is the step's own work."""
    import tempfile

    code = _START.format(backend=backend, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"SYMLSTM_JAX_CACHE": cache_dir or tmp}
        cold, _ = map(float, _child(code, env).split())
        warm, step = map(float, _child(code, env).split())
    return {"cold_start_sec": cold, "warm_start_sec": warm, "step_sec": step}


_TRAIN = """
import json
from symlstm.tools.bench import SHAPES, train_speed
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
        units, why = bf16_units()
        info["kernels"] = ("float32: XLA's f32 dot; bf16: XLA's bf16 dot, float32 accumulation (Bf16Dot); "
                           + why)
        if units:  # `precision: auto`'s measurement, made again here; `make train` reuses it
            bf16_is_faster(remeasure=True)
        info["auto"] = choose("auto", backend)[1].replace("measured once", "measured again by this bench")
        ok, why = onednn.available()
        can = {f"{p} {prim}": onednn.runs(prim, p == "bf16")[0] for prim in ("lstm", "matmul")
               for p in ("float32", "bf16")} if ok else {}
        info["onednn"] = (f"{onednn.version()}, instruction set {onednn.isa()}, {onednn.threads()} OpenMP thread(s) "
                          f"a call; makes " + ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in can.items())
                          if ok else f"not built ({why})")
    else:
        info["blas"] = pytensor.config.blas__ldflags or "none found: NumPy C-API fallback"
    return info


# The variables that cap the instruction sets XLA, oneDNN, PyTorch and MKL use (docs/speed.md)
ISA_CAPS = tuple(AVX2_CAPS)  # the variables that cap an instruction set


def isa_caps() -> str:
    """The instruction-set caps in force, as the bench header names them ("" for none); XLA_FLAGS
    only where it holds --xla_cpu_max_isa (it carries other flags too)."""
    return " ".join(f"{k}={v}" for k, v in ((k, os.environ.get(k, "")) for k in ISA_CAPS)
                    if v and (k != "XLA_FLAGS" or "max_isa" in v))


def run_all(backend: str = "jax", steps: int = 20, with_torch: bool | None = None, sampling: bool = True,
            starts: bool = True, system_malloc: bool = True, tick=lambda n=1, stage=None: None,
            done=lambda line: None, main: str | None = MAIN_JOB, shapes: bool = True, rounds: int = 8,
            overrides=(), pieces: bool = False) -> dict:
    """Every measurement of `make bench`; `tick(1, stage)` before each part and `done(line)` with a
    line of its figures after it, so that a caller shows progress and keeps what finished."""
    if with_torch is None:
        try:
            import torch  # noqa: F401
            with_torch = True
        except ImportError:
            with_torch = False
    result = {"machine": machine(), "class": isa_class(), "caps": isa_caps(), **backend_info(backend),
              "torch": with_torch}
    def part(stage, work, line):
        tick(1, f"bench: {stage}")
        value = work()
        done(f"bench: {stage}: {line(value)}")
        return value

    if main and (main != MAIN_JOB or os.path.exists(main)):  # the default needs a source checkout's configs
        result["main"] = part("the main job", lambda: main_job(main, rounds=rounds, with_torch=with_torch, overrides=overrides),
                              lambda m: f"symlstm {m['symlstm_ms']:.1f} ms a step" + (
                                  f", PyTorch {m['pytorch_ms']:.1f}: {m['ratio']:.2f}×" if "ratio" in m else ""))
    if main and pieces:
        result["pieces"] = part("the main job by piece", lambda: main_job_pieces(main, with_torch=with_torch,
                                                                                 overrides=overrides),
                                lambda p: f"{len(p['rows'])} rows")
    if not shapes:
        return result
    if starts:
        result["starts"] = {p: part(f"starts {p}", lambda p=p: start_times(backend, precision=p),
                                    lambda s: f"cold {s['cold_start_sec']:.1f} s, warm {s['warm_start_sec']:.1f} s")
                            for p in PATHS if backend == "jax" or p == "float32"}
    result["gemm_peak_gflops"] = part("GEMM peak", gemm_peak, lambda g: f"{g:.0f} GFLOP/s")
    result["train"] = [part(f"training shape {k}", lambda k=k: train_speed(k, steps, backend, with_torch),
                            lambda t: ", ".join(f"{key} {v:.0f}" for key, v in t.items() if key.endswith("chars_per_sec")))
                       for k in SHAPES]
    result["allocator"] = "tuned" if ALLOCATOR_TUNED else "glibc"
    if system_malloc and ALLOCATOR_TUNED:
        result["train_system_malloc"] = part("training with glibc's malloc",
                                             lambda: train_speed_system_malloc(steps, backend, with_torch),
                                             lambda rows: f"{len(rows)} shapes")
    if sampling:
        result["sample"] = [part(f"sampling, batch {b}", lambda b=b: sample_speed("A", b, backend=backend, with_torch=with_torch),
                                 lambda s: ", ".join(f"{k} {v:.0f}" for k, v in s.items() if k.endswith("per_sec")))
                            for b in (1, 32)]
        if os.path.exists(DATA):  # the shipped poems: a source checkout
            result["form_sample"] = part("sampling in form", lambda: form_sample_speed("A", backend=backend),
                                         lambda s: ", ".join(f"{k} {v:.0f}" for k, v in s.items() if k.endswith("per_sec")))
    return result


_PATH_NAMES = {"op": "LSTM layer Op (model.lstm_op: true, the default)",
               "scan": "plain scan (model.lstm_op: false, the default)",
               "onednn": "oneDNN primitives (model.onednn_lstm: on, onednn_matmul: auto)"}


def format_table(r: dict) -> str:
    lines = [f"machine: {r['machine']}; class {r.get('class', 'unknown')}"
             + (f" (capped: {r['caps']})" if r.get("caps") else ""),
             f"backend: {r['backend']} (PyTensor {r['pytensor']}); BLAS: {r['blas']}",
             *([f"kernels: {r['kernels']}"] if "kernels" in r else []),
             *([r["auto"]] if "auto" in r else []),
             *([f"oneDNN (its LSTM and matmul): {r['onednn']}"] if "onednn" in r else []),
             *([f"float32 GEMM peak (2048², same run): {r['gemm_peak_gflops']:.0f} GFLOP/s"] if "gemm_peak_gflops" in r else [])]
    main = r.get("main")
    if main:
        lines += [f"main job: {main['config']} (make train), precision {main['precision']}; what it runs here:",
                  *(f"  {line}" for line in main["paths"])]
    if not r.get("torch", True):
        lines.append("PyTorch: not run (not installed, or --no-torch); for its columns: .venv/bin/pip install "
                     "torch --index-url https://download.pytorch.org/whl/cpu")
    if main:
        lengths = sorted(main["symlstm_ms_by_length"])
        torch_at = main.get("pytorch_ms_by_length", {})
        lines += ["", f"the main job's step: its config, batches in the first epoch's order, each library's training step "
                  f"as its loop times it; {main['rounds']} blocks of {main['block']} steps each, taking turns; ms a step "
                  f"(median by length T); steps in {main['budget_sec']:.0f} s; ÷PyTorch = PyTorch's ms over symlstm's",
                  f"{'':<9}{'ms':>8}" + "".join(f"{'T ' + str(T):>8}" for T in lengths) + f"{'steps':>8}{'÷PyTorch':>10}",
                  f"{'symlstm':<9}{main['symlstm_ms']:>8.1f}"
                  + "".join(f"{main['symlstm_ms_by_length'][T]:>8.1f}" for T in lengths)
                  + f"{main['symlstm_steps_in_budget']:>8}" + (f"{main['ratio']:>10.2f}" if "ratio" in main else f"{'-':>10}")]
        if "pytorch_ms" in main:
            lines.append(f"{'PyTorch':<9}{main['pytorch_ms']:>8.1f}" + "".join(f"{torch_at[T]:>8.1f}" for T in lengths)
                         + f"{main['pytorch_steps_in_budget']:>8}" + ("  autocast bf16" if main["precision"] == "bf16" else ""))
        elif "pytorch_not_run" in main:
            lines.append(f"PyTorch not run here ({main['pytorch_not_run']})")
        if "pieces" in r:
            lines += ["", format_pieces(r["pieces"])]
    if "train" not in r:  # --main-only
        return "\n".join(lines)
    for precision, st in r.get("starts", {}).items():
        lines.append(f"start to the end of the first training step, shape B, {precision} (fresh interpreter each): "
                     f"cold {st['cold_start_sec']:.1f} s, warm {st['warm_start_sec']:.1f} s, "
                     f"of which the step itself {st['step_sec']:.1f} s")
    lines += ["", "training (forward + backward + SGD), chars/s of the median step; every path below takes turns "
              "step by step",
              "malloc: tuned = symlstm's allocator setting, in force for both libraries; glibc = untouched",
              "bf16: symlstm precision bf16 (Bf16Dot on XLA's bf16 dot); PyTorch torch.autocast(bfloat16)",
              f"{'shape':<6}{'malloc':<7}{'symlstm f32':>12}{'bf16':>7}{'bf16/f32':>9}{'PyTorch f32':>12}{'bf16':>7}"
              f"{'bf16/f32':>9}{'f32 ratio':>10}{'bf16 ratio':>11}"]
    rows = [(t, r.get("allocator", "glibc")) for t in r["train"]]
    rows += [(t, "glibc") for t in r.get("train_system_malloc", [])]
    for t, malloc in sorted(rows, key=lambda row: row[0]["shape"]):
        torch_part = (f"{t['torch_f32_chars_per_sec']:>12.0f}{t['torch_bf16_chars_per_sec']:>7.0f}"
                      f"{t['torch_bf16_speedup']:>9.2f}{t['ratio']:>10.2f}{t['bf16_ratio']:>11.2f}"
                      if "ratio" in t else f"{'(torch not installed)':>28}")
        lines.append(f"{t['shape']:<6}{malloc:<7}{t['symlstm_f32_chars_per_sec']:>12.0f}"
                     f"{t.get('symlstm_bf16_chars_per_sec', float('nan')):>7.0f}{t['bf16_speedup']:>9.2f}" + torch_part)
    for t in r["train"]:
        for k, why in t.items():
            if k.endswith("_not_run"):
                lines.append(f"{t['shape']}: {k[:-len('_not_run')].replace('_', ' ')} not run here ({why})")
    paths = [t for t, malloc in rows if malloc == r.get("allocator", "glibc") and "op_speedup_f32" in t]
    nan = float("nan")  # a path that does not run at a precision here (oneDNN's bf16 LSTM without AVX-512)
    if paths:
        names = [k for k in RECURRENCES if f"symlstm_f32_{k}_chars_per_sec" in paths[0]]
        ratios = [k for k in names if k != "scan"]
        lines += ["", f"the recurrence, same run: symlstm's rows above are the {_PATH_NAMES[paths[0]['recurrence']]}",
                  "step: chars/s through the LSTM layer Op (its own backward), the plain scan (autodiff)"
                  + (" and oneDNN's primitives (its LSTM; its matmul for the bf16 output layer; XLA FFI)"
                     if "onednn" in names else "") + ";",
                  "ms: the median step, and the output layer + loss alone (forward and backward) with its share;",
                  "÷PyTorch: the fastest path's chars/s over PyTorch's at the same precision",
                  f"{'shape':<6}{'precision':<10}" + "".join(f"{k:>8}" for k in names)
                  + "".join(f"{k + '/scan':>13}" for k in ratios)
                  + f"{'step ms':>9}{'output ms':>10}{'share':>7}{'rest ms':>9}{'÷PyTorch':>9}"]
        for t in paths:
            for p in ("f32", "bf16"):
                if f"op_speedup_{p}" in t:
                    best = max(t.get(f"symlstm_{p}_{k}_chars_per_sec", 0.0) for k in names)
                    theirs = t.get(f"torch_{p}_chars_per_sec")
                    lines.append(f"{t['shape']:<6}{p:<10}"
                                 + "".join(f"{t.get(f'symlstm_{p}_{k}_chars_per_sec', nan):>8.0f}" for k in names)
                                 + "".join(f"{t.get(f'{k}_speedup_{p}', nan):>13.2f}" for k in ratios)
                                 + f"{t[f'symlstm_{p}_ms']:>9.1f}{t[f'output_{p}_ms']:>10.1f}"
                                 f"{t[f'output_share_{p}']:>7.0%}"
                                 f"{t[f'symlstm_{p}_ms'] - t[f'output_{p}_ms']:>9.1f}"
                                 + (f"{best / theirs:>9.2f}" if theirs else f"{'-':>9}"))
    lines.append("GFLOP/s (3 × forward FLOPs): " + "; ".join(
        f"{t['shape']} symlstm {t['symlstm_f32_gflops']:.0f} / {t.get('symlstm_bf16_gflops', float('nan')):.0f}"
        + (f", PyTorch {t['torch_f32_gflops']:.0f} / {t['torch_bf16_gflops']:.0f}" if "ratio" in t else "")
        for t, malloc in rows if malloc == r.get("allocator", "glibc")))
    if r.get("sample"):
        lines += ["", "sampling, shape A, chars/s",
                  f"{'batch':<6}{'compiled scan':>14}{'step loop':>11}{'PyTorch loop':>14}{'scan/PyTorch':>13}"]
        for sp in r["sample"]:
            torch_part = (f"{sp['torch_chars_per_sec']:>14.0f}{sp['scan_ratio']:>13.2f}" if "scan_ratio" in sp
                          else f"{'-':>14}{'-':>13}")
            lines.append(f"{sp['batch']:<6}{sp['scan_chars_per_sec']:>14.0f}{sp['step_chars_per_sec']:>11.0f}" + torch_part)
    fs = r.get("form_sample")
    if fs:
        torch_cps = next((sp["torch_chars_per_sec"] for sp in r.get("sample", []) if sp["batch"] == 1
                          and "torch_chars_per_sec" in sp), None)
        vs = lambda v: f" ({v / torch_cps:.2f}× PyTorch's batch-1 loop)" if torch_cps else ""  # noqa: E731
        lines += ["", f"sampling --form {fs['form']} --tones {fs['tones']}, shape A, batch 1, {fs['poems']} poems "
                  "one call each, chars/s",
                  f"compiled form scan {fs['form_scan_chars_per_sec']:.0f}{vs(fs['form_scan_chars_per_sec'])}; "
                  f"step path {fs['form_step_chars_per_sec']:.0f}{vs(fs['form_step_chars_per_sec'])}"]
    return "\n".join(lines)


def as_json(r: dict) -> str:
    return json.dumps(r, indent=1)
