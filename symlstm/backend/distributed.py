"""Several processes, one run: JAX's distributed runtime, nothing of our own.

`join` starts a process's part in a run of several: `jax.distributed.initialize` connects it to
the others (its coordination service, in process 0, hands out the devices of every process), and on
CPUs the collectives inside the compiled step run over gloo (`jax_cpu_collectives_implementation`).
Under SLURM or Open MPI JAX's own detection finds the processes; by hand, the three values of
`jax.distributed.initialize` come from `symlstm train --coordinator-address HOST:PORT
--num-processes N --process-id I`. After `join`, `jax.devices()` spans every process, and
`devices.Placement` lays the step's arrays over all of them.

A process that dies must not leave the others waiting forever inside a collective: the step's
all-reduce then fails in each survivor (gloo sees the connection close) and `lost` turns that
failure into one line naming what was lost. Launched by hand, the coordination service runs in a
process of its own beside process 0 (`coordinator.py`), so that process 0 may die like any other;
under SLURM or Open MPI it is JAX's, inside process 0, whose death the others then meet as JAX's own
fatal error.
"""
import os
import subprocess
import sys

from symlstm.errors import UserError

# the environment variables by which JAX's cluster detection recognises a job of several processes
CLUSTERS = {"SLURM_NTASKS": "SLURM", "OMPI_COMM_WORLD_SIZE": "Open MPI"}


class DistributedError(UserError, RuntimeError):
    """Processes that cannot join, or a run that lost one of them."""


def detected() -> str:
    """The cluster environment JAX would detect a job of several processes in, or ""."""
    def many(var: str) -> bool:
        value = os.environ.get(var, "1")
        return value.isdigit() and int(value) > 1

    return next((name for var, name in CLUSTERS.items() if many(var)), "")


def join(coordinator_address: str | None = None, num_processes: int | None = None, process_id: int | None = None,
         timeout: int = 120) -> tuple[int, int]:
    """Join a run of several processes, before anything else touches JAX; returns (this process's
    index, the number of processes), (0, 1) where there is nothing to join (no values given, no
    cluster detected, or --num-processes 1: a run of its own inside a cluster job)."""
    if num_processes == 1 and coordinator_address is None and process_id in (None, 0):
        return 0, 1
    given = [v is not None for v in (coordinator_address, num_processes, process_id)]
    if any(given) and not all(given):
        raise DistributedError("--coordinator-address, --num-processes and --process-id go together (by hand), "
                               "or none of them (under SLURM or Open MPI, which JAX detects)")
    if not any(given) and not detected():
        return 0, 1
    if all(given) and not 0 <= process_id < num_processes:
        raise DistributedError(f"--process-id {process_id}: between 0 and --num-processes - 1 = {num_processes - 1}")
    if coordinator_address is not None:
        _host_port(coordinator_address)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU collectives across processes
    if process_id == 0:  # by hand: the service in a process of its own, process 0 a client like the rest
        _start_service(coordinator_address, num_processes)
    elif process_id is not None:  # by hand: wait for process 0's service here, where waiting in vain ends
        _wait_for(coordinator_address, timeout)  # in one line, not in JAX's fatal error
    _initialize(coordinator_address, num_processes, process_id, timeout)
    return jax.process_index(), jax.process_count()


def _initialize(coordinator_address, num_processes, process_id, timeout: int):
    """`jax.distributed.initialize`, given `timeout` seconds for every process to join. Its client
    aborts the process when the others do not come (a native stack trace): it runs here in a thread
    with a longer timeout of its own, and where ours passes first this process says so in one line
    and leaves at once (the one exit that does not unwind: the client is still waiting)."""
    import threading

    import jax
    from jax._src import distributed

    failed = []

    def connect():
        try:
            jax.distributed.initialize(coordinator_address, num_processes, process_id,
                                       initialization_timeout=timeout + 60)
        except Exception as err:
            failed.append(err)

    make_service = distributed._jax.get_distributed_runtime_service
    if process_id == 0:  # the service runs in the coordinator process already: none in here
        distributed._jax.get_distributed_runtime_service = lambda *args, **kwargs: None
    try:
        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(timeout)
    finally:
        distributed._jax.get_distributed_runtime_service = make_service
    where = coordinator_address or f"the coordinator {detected()} names"
    if thread.is_alive():
        sys.stderr.write(f"symlstm train: error: not every process joined the run at {where} within {timeout} s "
                         "(each started with the same --coordinator-address and --num-processes, and its own "
                         "--process-id?); --join-timeout S waits longer\n")
        sys.stderr.flush()
        os._exit(2)
    if failed:
        raise DistributedError(f"could not join the run at {where}: "
                               f"{str(failed[0]).strip().splitlines()[0][:200]}") from None


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise DistributedError(f"--coordinator-address {address}: give HOST:PORT, e.g. 127.0.0.1:4321")
    return host.strip("[]"), int(port)


def _wait_for(address: str, timeout: int):
    """Until something listens at HOST:PORT, for `timeout` seconds at most."""
    import socket
    import time

    host, port = _host_port(address)
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((host, port), timeout=2).close()
            return
        except OSError as err:
            if time.monotonic() > deadline:
                raise DistributedError(f"--coordinator-address {address}: nothing listened there for {timeout} s "
                                       f"({err.strerror or err}); start process 0 first, or check the address "
                                       "(--join-timeout S waits longer)") from None
            time.sleep(0.5)


_service = None  # process 0's coordinator process: its standard input stays open while process 0 lives


def _start_service(address: str, processes: int):
    global _service
    import socket

    _, port = _host_port(address)
    try:  # gRPC binds with SO_REUSEPORT, so a taken port (another run, a coordinator in its grace) would
        socket.create_server(("", port)).close()  # not be noticed: a plain bind notices it
    except OSError as err:
        raise DistributedError(f"--coordinator-address {address}: port {port} is taken here ({err.strerror}); "
                               "choose another, the same for every process") from None
    _service = subprocess.Popen([sys.executable, "-m", "symlstm.backend.coordinator", address, str(processes)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                start_new_session=True)
    if _service.stdout.readline().strip() != "ready":
        raise DistributedError(f"--coordinator-address {address}: the coordination service could not start there")


# what a collective says when its other end is gone (gloo's TCP pairs)
GONE = ("Connection closed by peer", "Connection reset by peer")


def is_lost(err: BaseException) -> bool:
    """Whether `err` is a collective failing because another process is gone (any other error is
    a bug, and keeps its traceback)."""
    return isinstance(err, Exception) and not isinstance(err, UserError) and any(w in str(err) for w in GONE)


def ready(failure: str = "") -> None:
    """Every process says whether it could set its run up (`failure` empty: yes), and waits for the
    others' word: a process that stopped before training (a run directory that holds a run, a
    missing checkpoint) stops the others in one line, instead of leaving them in their first
    collective. Through the coordination service's key-value store, not a collective."""
    import time

    import jax
    from jax._src import distributed

    client, index, count = distributed.global_state.client, jax.process_index(), jax.process_count()
    client.key_value_set(f"symlstm/ready/{index}", failure or "ok", allow_overwrite=True)
    if failure:
        return
    waiting = set(range(count)) - {index}
    while waiting:
        for other in sorted(waiting):
            try:
                word = client.key_value_try_get(f"symlstm/ready/{other}")
            except Exception:  # not there yet
                continue
            if word != "ok":
                raise DistributedError(f"process {other} of {count} stopped before training: {word}")
            waiting.discard(other)
        time.sleep(0.05)


def lost(err: Exception, index: int, count: int) -> DistributedError:
    """The one line for a collective that failed because another process is gone."""
    why = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
    other = f"process {1 - index}" if count == 2 else "another process"
    return DistributedError(f"process {index} of {count}: {other} of the run stopped (the step's collective "
                            f"failed: {why}); every process stops; start them all again with --resume RUN_DIR "
                            "to go on from the last checkpoint")


def agree(elapsed: float, interrupted: bool, chars: float) -> tuple[float, bool, float]:
    """(process 0's `elapsed`, whether any process was interrupted, every process's `chars`
    summed), the same in every process: what decides when to stop must be, or one process would
    wait for the others inside the next step forever. One collective (an all-gather of three numbers)."""
    import numpy as np
    from jax.experimental import multihost_utils

    every = np.asarray(multihost_utils.process_allgather(np.array([elapsed, float(interrupted), chars])))
    every = every.reshape(-1, 3)
    return float(every[0, 0]), bool(every[:, 1].any()), float(every[:, 2].sum())
