"""Data parallelism: where the arrays of the training step live when it runs on several devices.

The compiled training step stays the one `pytensor.function` of the JAX backend. This module only
places its arrays: the batch axis of x, y, mask, the carried states and the dropout masks is split
over a 1-D mesh of N devices (`jax.sharding.Mesh`, axis "batch"), parameters and optimizer state are
replicated on every device. XLA's GSPMD partitioner then compiles the step for that layout: each
device runs its share of the batch and the gradients are all-reduced inside the step, with no
parameter server and no hand-written collective. Arrays stay on the devices between steps; only the
loss and the gradient norm (two scalars) and, for checkpoints, the parameters come back.
"""
import numpy as np

from symlstm.errors import InputError, UserError


class DeviceError(UserError, ValueError):
    """A device count this machine or this backend cannot give."""


def resolve(devices: int, backend: str = "jax") -> int:
    """train.devices -> a device count: 0 means every local device."""
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


class Placement:
    """A 1-D mesh of `n` local devices and the two layouts of the training step's arrays."""

    def __init__(self, n: int):
        import jax
        from jax.sharding import Mesh, NamedSharding, PartitionSpec

        self.n, self.jax = n, jax
        self.mesh = Mesh(np.array(jax.local_devices()[:n]), ("batch",))
        self.replicated = NamedSharding(self.mesh, PartitionSpec())
        self._split = {ndim: NamedSharding(self.mesh, PartitionSpec(None, "batch", *[None] * (ndim - 2)))
                       for ndim in (2, 3)}  # (T, B) and (T or L, B, H): the batch is axis 1

    def check_batch(self, batch: int):
        if batch % self.n:
            raise InputError(f"a batch of {batch} rows does not split over {self.n} devices: make "
                             f"data.batch_size a multiple of train.devices")

    def replicate(self, a):
        return self.jax.device_put(a, self.replicated)

    def split(self, a):
        """Split the batch axis (axis 1) over the devices; an array already laid out so is kept."""
        sharding = self._split[np.ndim(a)]
        if isinstance(a, self.jax.Array) and a.sharding == sharding:
            return a
        return self.jax.device_put(a, sharding)

    def scalar(self, a):
        """A device scalar's value on the host, fetched explicitly (not an implicit transfer)."""
        return float(self.jax.device_get(a))
