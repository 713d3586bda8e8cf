"""JAX's coordination service in a process of its own (`python -m symlstm.backend.coordinator ADDRESS
N`), started by process 0 of a run launched by hand (`distributed.join`).

Inside process 0, as `jax.distributed.initialize` would put it, the service dies with that process,
and every other process then ends in JAX's own fatal error, a native stack trace, instead of the one
line that names what was lost. Here it outlives process 0: it serves until its standard input closes
(process 0 ended, or was killed), then `GRACE` seconds more, so that the others see process 0's
collective fail, say so and leave.
"""
import sys
import time

GRACE = 10.0  # seconds the service stays up after process 0 is gone


def main(address: str, processes: int) -> int:
    from jax._src.lib import _jax

    port = address.rsplit(":", 1)[1]
    service = _jax.get_distributed_runtime_service(f"[::]:{port}", processes)
    print("ready", flush=True)
    sys.stdin.read()  # until process 0 ends, however it ends
    time.sleep(GRACE)
    service.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
