"""Training in several processes on JAX's distributed runtime, for real: two `symlstm train`
processes on 127.0.0.1 (gloo collectives, one CPU device each) against one process on the same
global batch; a process killed mid-run; the run resumed by both."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from symlstm.run import checkpoint

from conftest import ROOT

TINY = ["--config", "configs/tiny.yaml", "--no-progress", "--set", "train.eval_every=3", "--set", "train.num_samples=0"]


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


def lines_of(proc) -> list:
    """A running process's stdout lines, as they come (read in a thread)."""
    seen = []
    threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True).start()
    return seen


def wait_until(done, what: str, procs, seconds: float = 240):
    deadline = time.time() + seconds
    while not done() and time.time() < deadline:
        time.sleep(0.1)
    assert done(), (what, finish(procs, 5))


def one_line_from(result, expected: str):
    code, _, stderr = result
    lines = [l for l in stderr.splitlines() if l.strip() and not l.startswith("[Gloo]")]
    assert code == 2 and "Traceback" not in stderr and " @ " not in stderr, stderr[-2000:]
    assert lines[-1].startswith(expected), stderr[-2000:]


@pytest.mark.slow
def test_process_1_killed_stops_process_0_which_keeps_the_step_it_reached(tmp_path):
    """No validation before the kill, so any last.h5 is the one process 0 writes when it loses
    process 1: at the step it reached, the failed step undone (its dropout draw too). Both resume
    from it and end where an uninterrupted run ends."""
    run, port = tmp_path / "killed", free_port()
    procs = [start(TINY + ["--out", str(run), "--set", "train.max_steps=100000", "--set", "train.eval_every=100000"],
                   k, port) for k in (0, 1)]
    out0 = lines_of(procs[0])
    wait_until(lambda: any("compiled the training step" in l for l in out0), "compiled", procs)
    time.sleep(2)  # steps of a tiny model: hundreds by now
    os.killpg(procs[1].pid, signal.SIGKILL)
    killed = time.time()
    procs[0].wait(timeout=120)
    assert time.time() - killed < 120
    one_line_from((procs[0].returncode, "", procs[0].stderr.read()),
                  "symlstm train: error: process 0 of 2: process 1 of the run stopped")
    saved = checkpoint.load(run / "last.h5").step
    assert saved > 3 and not (run / "best.h5").exists()  # not a validation's: the step process 0 reached
    end = saved + 3
    two(["--resume", str(run), "--no-progress", "--set", f"train.max_steps={end}"])
    one(TINY + ["--out", str(tmp_path / "whole"), "--set", f"train.max_steps={end}"])  # one process trains as two
    assert largest_difference(run / "last.h5", tmp_path / "whole" / "last.h5") <= 1e-5


@pytest.mark.slow
def test_process_0_killed_stops_process_1_in_one_line(tmp_path):
    """Process 0 runs beside JAX's coordination service, which lives in a process of its own: its
    death ends process 1 in one line too, and leaves the last validation's last.h5."""
    run, port = tmp_path / "killed", free_port()
    procs = [start(TINY + ["--out", str(run), "--set", "train.max_steps=100000"], k, port) for k in (0, 1)]
    wait_until(lambda: (run / "last.h5").exists(), "the first validation's last.h5", procs)
    os.killpg(procs[0].pid, signal.SIGKILL)
    killed = time.time()
    result = finish([procs[1]], timeout=120)[0]
    assert time.time() - killed < 120
    one_line_from(result, "symlstm train: error: process 1 of 2: process 0 of the run stopped")
    finish(procs)


@pytest.mark.slow
def test_ctrl_c_in_one_process_stops_both_and_a_setup_failure_stops_the_other(tmp_path):
    """SIGINT to process 1 alone: both stop at the same step (interrupted), process 0 saving
    last.h5. Then process 0 refuses the run directory (it holds a run), and process 1, which set
    itself up, says so in one line instead of waiting in its first collective."""
    run, port = tmp_path / "run", free_port()
    procs = [start(TINY + ["--out", str(run), "--set", "train.max_steps=100000", "--set", "train.eval_every=100000"],
                   k, port) for k in (0, 1)]
    out0 = lines_of(procs[0])
    wait_until(lambda: any("compiled the training step" in l for l in out0), "compiled", procs)
    time.sleep(2)
    os.killpg(procs[1].pid, signal.SIGINT)
    for p in procs:
        p.wait(timeout=120)
    assert [p.returncode for p in procs] == [0, 0], [p.stderr.read()[-1500:] for p in procs]
    assert any(l.startswith("stopped (interrupted) at step") for l in out0)
    assert checkpoint.load(run / "last.h5").step > 3
    port = free_port()
    results = finish([start(TINY + ["--out", str(run)], k, port) for k in (0, 1)], timeout=180)
    one_line_from(results[0], f"symlstm train: error: {run}: already holds a run")
    one_line_from(results[1], f"symlstm train: error: process 0 of 2 stopped before training: {run}: already holds")


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


def test_a_run_of_its_own_inside_a_cluster_job_and_a_taken_port(monkeypatch):
    from symlstm.backend import distributed

    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert distributed.detected() == "SLURM" and distributed.join(num_processes=1) == (0, 1)
    with socket.create_server(("", 0)) as taken:  # a plain bind notices what gRPC's SO_REUSEPORT would share
        port = taken.getsockname()[1]
        with pytest.raises(distributed.DistributedError, match=f"port {port} is taken here"):
            distributed._start_service(f"127.0.0.1:{port}", 2)
