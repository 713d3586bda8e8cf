"""Training in several processes on JAX's distributed runtime, for real: two `symlstm train`
processes on 127.0.0.1 (gloo collectives, one CPU device each) against one process on the same
global batch; a process killed mid-run; the run resumed by both."""
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from symlstm.run import checkpoint

from conftest import ROOT

TINY = ["--config", "configs/tiny.yaml", "--no-progress", "--set", "data.cache=false", "--set", "train.eval_every=3"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args, process=None, port=None, count=2):
    """`symlstm train ARGS`, alone or as process `process` of `count`; stdout and stderr to pipes."""
    extra = [] if process is None else ["--coordinator-address", f"127.0.0.1:{port}", "--num-processes", str(count),
                                        "--process-id", str(process)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "symlstm", "train", *args, *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(procs, timeout=300):
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=timeout)
            out.append((p.returncode, stdout, stderr))
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
    return out


def one(args):
    ((code, stdout, stderr),) = finish([start(args)])
    assert code == 0, stderr[-2000:]


def two(args):
    port = free_port()
    results = finish([start(args, k, port) for k in (0, 1)])
    for code, _, stderr in results:
        assert code == 0, stderr[-2000:]
    return results


def largest_difference(a, b) -> float:
    a, b = checkpoint.load(a), checkpoint.load(b)
    assert a.step == b.step
    return max(float(np.abs(a.params[k] - b.params[k]).max()) for k in a.params)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["poem", "stream"])
def test_two_processes_train_as_one(tmp_path, mode):
    """Six steps with dropout (and, in stream mode, states carried from batch to batch): the two
    processes' parameters equal one process's on the same global batch."""
    args = TINY + ["--set", "train.max_steps=6", "--set", f"data.mode={mode}"]
    one(args + ["--out", str(tmp_path / "one")])
    (_, out0, _), (_, out1, _) = two(args + ["--out", str(tmp_path / "two")])
    assert largest_difference(tmp_path / "one" / "last.h5", tmp_path / "two" / "last.h5") <= 1e-5
    assert "processes: 2, the batch split over the 2 devices of all of them" in out0
    assert out1.strip().splitlines()[0] == f"process 1 of 2: joined the run; process 0 reports it and writes {tmp_path / 'two'}"
    assert "valid" not in out1  # process 0 alone reports, and writes
    assert sorted(os.listdir(tmp_path / "two")) == sorted(os.listdir(tmp_path / "one"))


@pytest.mark.slow
@pytest.mark.parametrize("victim", [1, 0])
def test_a_killed_process_stops_the_other_in_one_line_and_the_run_resumes(tmp_path, victim):
    """Kill one process mid-run (process 0 too, whose coordination service lives in a process of
    its own): the other ends at once with one line and no traceback. Process 1 killed, process 0
    keeps last.h5 at the step it reached (the failed step undone, its dropout draw too); both
    resume from it and end where an uninterrupted run ends (resuming is the same code whichever
    process was lost, so it runs once)."""
    run = tmp_path / "killed"
    port = free_port()
    procs = [start(TINY + ["--out", str(run), "--set", "train.max_steps=100000"], k, port) for k in (0, 1)]
    deadline = time.time() + 240
    while not (run / "last.h5").exists() and time.time() < deadline:  # the first validation's checkpoint
        time.sleep(0.2)
    assert (run / "last.h5").exists(), finish(procs, 5)
    os.killpg(procs[victim].pid, signal.SIGKILL)
    killed = time.time()
    (code, _, stderr), = finish([procs[1 - victim]], timeout=120)
    assert time.time() - killed < 120
    lines = [l for l in stderr.splitlines() if l.strip() and not l.startswith("[Gloo]")]
    assert code == 2 and "Traceback" not in stderr and " @ " not in stderr, stderr[-2000:]
    assert lines[-1].startswith(f"symlstm train: error: process {1 - victim} of 2: process {victim} of the run "
                                "stopped"), stderr[-2000:]
    finish(procs)
    if victim == 0:
        return
    saved = checkpoint.load(run / "last.h5").step
    end = saved + 3
    two(["--resume", str(run), "--no-progress", "--set", f"train.max_steps={end}"])
    two(TINY + ["--out", str(tmp_path / "whole"), "--set", f"train.max_steps={end}"])
    assert largest_difference(run / "last.h5", tmp_path / "whole" / "last.h5") <= 1e-5


@pytest.mark.parametrize("args, message", [
    (["--num-processes", "2"], "--coordinator-address, --num-processes and --process-id go together"),
    (["--coordinator-address", "127.0.0.1:PORT", "--num-processes", "2", "--process-id", "2"],
     "--process-id 2: between 0 and --num-processes - 1 = 1"),
    (["--coordinator-address", "127.0.0.1:PORT", "--num-processes", "2", "--process-id", "1", "--join-timeout", "1"],
     "--coordinator-address 127.0.0.1:PORT: nothing listened there for 1 s"),  # no process 0: one line, no abort
    (["--coordinator-address", "127.0.0.1:PORT", "--num-processes", "2", "--process-id", "0", "--join-timeout", "2"],
     "not every process joined the run at 127.0.0.1:PORT within 2 s"),  # no process 1: JAX would abort
])
def test_joining_mistakes_are_one_line(args, message):
    port = str(free_port())
    args = [a.replace("PORT", port) for a in args]
    ((code, _, stderr),) = finish([start(TINY + ["--out", "unused"] + args)], timeout=120)
    lines = [l for l in stderr.splitlines() if l.strip()]
    assert code == 2 and len(lines) == 1 and message.replace("PORT", port) in lines[0], stderr[-1500:]
