"""Data parallelism: where the arrays of the training step live when it runs on several devices.

The compiled training step stays the one `pytensor.function` of the JAX backend. This module only
places its arrays: the batch axis of x, y, mask, the carried states and the dropout masks is split
over a 1-D mesh of N devices (`jax.sharding.Mesh`, axis "batch"), parameters and optimizer state are
replicated on every device. In a run of several processes (`distributed.join`) the mesh spans every
process's devices; each process then puts on its own devices only its rows of a batch, and reads
back its own copy of what is replicated (`host`). XLA's GSPMD partitioner then compiles the step for that layout: each
device runs its share of the batch and the gradients are all-reduced inside the step, with no
parameter server and no hand-written collective. Arrays stay on the devices between steps; only the
loss and the gradient norm (two scalars) and, for checkpoints, the parameters come back.
"""
import numpy as np

from symlstm.errors import InputError, UserError


class DeviceError(UserError, ValueError):
    """A device count this machine or this backend cannot give."""


def processes() -> int:
    """How many processes this run has (`distributed.join`; 1 without JAX's distributed runtime)."""
    import sys

    if "jax" not in sys.modules:
        return 1
    from jax._src import distributed

    return distributed.global_state.num_processes if distributed.global_state.client is not None else 1


def process() -> tuple[int, int]:
    """(this process's index, the number of processes) of the run: (0, 1) alone."""
    if processes() == 1:
        return 0, 1
    import jax

    return jax.process_index(), jax.process_count()


def resolve(devices: int | None, backend: str = "jax") -> int:
    """train.devices -> a device count: 0 means every local device; in a run of several processes,
    every device of every process (train.devices then counts each process's own: 1 or all). None:
    this process's first device alone, whatever the run (a model copy for sampling)."""
    if devices is None:
        return 1
    if processes() > 1:
        import jax

        if devices not in (0, 1, jax.local_device_count()):
            raise DeviceError(f"train.devices {devices}: in a run of several processes every process uses all "
                              f"its devices ({jax.local_device_count()} here); leave train.devices at 1 or 0")
        return jax.device_count()
    if devices == 1:
        return 1
    if backend != "jax":
        raise DeviceError(f"train.devices {devices}: several devices need the jax backend, not {backend}")
    import jax

    local = jax.local_device_count()
    if devices == 0:
        return local
    if devices > local:
        raise DeviceError(f"train.devices {devices}: this machine has {local} local device(s) "
                          f"({jax.devices()[0].platform}); for CPU devices set "
                          "XLA_FLAGS=--xla_force_host_platform_device_count=N before starting")
    return devices


def host(a) -> np.ndarray:
    """An array's value as NumPy; of an array replicated over several processes, this process's
    copy (the whole of it: converting the global array would ask for the others' devices)."""
    import sys

    if "jax" in sys.modules:
        import jax

        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            assert a.is_fully_replicated, "only replicated arrays are read back in a run of several processes"
            return np.array(a.addressable_data(0))
    return np.array(a)


class Placement:
    """A 1-D mesh of `n` devices (local ones, or every process's) and the two layouts of the
    training step's arrays."""

    def __init__(self, n: int):
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.jax, self.processes = jax, processes()
        devices = jax.devices() if self.processes > 1 else jax.local_devices()[:n]
        self.n = len(devices)
        self.mesh = Mesh(np.array(devices), ("batch",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self._split = {ndim: NamedSharding(self.mesh, PartitionSpec(None, "batch", *[None] * (ndim - 2)))
                       for ndim in (2, 3)}  # (T, B) and (T or L, B, H): the batch is axis 1

    def check_batch(self, batch: int):
        if batch % self.n:
            raise InputError(f"a batch of {batch} rows does not split over {self.n} devices: make "
                             f"data.batch_size a multiple of train.devices")

    def _put(self, a, sharding):
        """A host array (the same in every process) onto the mesh: each process puts the parts its
        own devices hold, the others' rows never leave their process."""
        if self.processes == 1:
            return self.jax.device_put(a, sharding)
        a = host(a)
        return self.jax.make_array_from_callback(a.shape, sharding, lambda index: a[index])

    def _laid_out(self, a, sharding):
        """`a` in `sharding`: as it is where it already is so (the previous step's outputs), moved
        on the devices where it is a global array of another layout, else put from the host."""
        if isinstance(a, self.jax.Array):
            if a.sharding.is_equivalent_to(sharding, a.ndim):
                return a
            if not a.is_fully_addressable:
                return self.jax.device_put(a, sharding)
        return self._put(a, sharding)

    def replicate(self, a):
        return self._laid_out(a, self.replicated)

    def rows(self, batch: int) -> slice:
        """The rows of a global batch of `batch` rows that this process's devices hold (all of
        them in a run of one process): a run of several gives each process its own rows to build."""
        if self.processes == 1:
            return slice(0, batch)
        held = sorted(index[1].indices(batch)[:2] for index in
                      self._split[2].addressable_devices_indices_map((1, batch)).values())
        assert all(a[1] == b[0] for a, b in zip(held, held[1:])), "a process's rows are one block"
        return slice(held[0][0], held[-1][1])

    def gather_rows(self, a, batch: int):
        """This process's rows (`rows(batch)`) of a batch array -> the global array split over the
        mesh (`jax.make_array_from_process_local_data`): the others' rows stay in their processes."""
        if self.processes == 1:
            return self.split(a)
        shape = (a.shape[0], batch, *a.shape[2:])
        return self.jax.make_array_from_process_local_data(self._split[np.ndim(a)], np.asarray(a), shape)

    def split(self, a):
        """Split the batch axis (axis 1) over the devices; an array already laid out so is kept."""
        return self._laid_out(a, self._split[np.ndim(a)])

    def scalar(self, a):
        """A device scalar's value on the host, fetched explicitly (not an implicit transfer)."""
        return float(host(self.jax.device_get(a) if self.processes == 1 else a))
