"""Setting the process up for a backend: the table of backends, the JAX patches and cache, the
allocator, and PyTensor's flags. Nothing here builds or compiles a graph (`core/compiled.py` does),
and nothing here knows the model's Ops: those that have a JAX implementation hand it to
`on_jax`, which registers it when the JAX backend is set up.

Importing this module tunes glibc's allocator (see `_tune_allocator`); it must happen before JAX
starts its threads, which is why it is done at import rather than on first use.
"""
import ctypes
import os
import platform

import pytensor

from symlstm.backend.machine import jax_cache_dir
from symlstm.errors import UserError

# The one table of backends: the name a config or a command line uses -> PyTensor's mode.
BACKENDS = {"jax": "JAX", "c": "CVM", "numba": "NUMBA"}


class BackendError(UserError, ValueError):
    """A backend name that is not in BACKENDS."""


_JAX_KERNELS = []  # functions that register an Op's JAX implementation (core/xent.py, core/precision.py)
_jax_ready = False  # _patch_jax has run: registered kernels are in place


def on_jax(register):
    """Call `register` when the JAX backend is set up, or now if it already is: an Op's module hands
    over its JAX implementation this way, so that this module need not import the model (and
    importing an Op's module does not import JAX)."""
    _JAX_KERNELS.append(register)
    if _jax_ready:
        register()
    return register


def _patch_jax():
    """PyTensor 3.0.7's JAX reductions return their accumulator dtype (float64 for a float32 sum),
    which silently turns float32 parameters into float64 after one update; cast to the output type."""
    global _jax_ready
    from pytensor.link.jax.dispatch import elemwise, jax_funcify
    from pytensor.tensor.elemwise import CAReduce

    if getattr(elemwise, "_symlstm_patched", False):
        return
    import jax

    # XLA's persistent cache: a second process with the same shapes skips XLA compilation.
    jax.config.update("jax_compilation_cache_dir", jax_cache_dir())
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    original = elemwise.jax_funcify_CAReduce

    @jax_funcify.register(CAReduce)
    def careduce_output_dtype(op, node=None, **kwargs):
        fn = original(op, node=node, **kwargs)
        dtype = node.outputs[0].dtype
        return lambda x: fn(x).astype(dtype)

    for register in _JAX_KERNELS:
        register()
    elemwise._symlstm_patched = _jax_ready = True


def _tune_allocator() -> bool:
    """Keep freed memory in the process instead of handing it back to the kernel (glibc only).

    glibc serves every allocation above 32 MB (and, in a worker thread's arena, above 64 MB) with a
    fresh mmap and unmaps it on free. A training step's buffers are that large (XLA's temporary
    arena at shape A of `make bench`), so every step paid tens of thousands of page faults. One
    arena, no mmap and no trimming make the pages stay mapped and be reused; `make bench` prints
    the step with and without (figures in docs/measurements.md, "allocator"). Set
    SYMLSTM_SYSTEM_MALLOC=1 to leave malloc alone. This is a process-wide setting, made when this
    module is imported (before JAX starts its threads): PyTorch in the same process gains from it
    too.
    """
    if os.environ.get("SYMLSTM_SYSTEM_MALLOC") or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)
    M_TRIM_THRESHOLD, M_MMAP_MAX, M_ARENA_MAX = -1, -4, -8  # <malloc.h>
    return all(libc.mallopt(param, value) == 1 for param, value in
               ((M_ARENA_MAX, 1), (M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, 2**31 - 1)))


# At import: threads that allocate before it keep arenas of their own (XLA's pool). Reported by bench.
ALLOCATOR_TUNED = _tune_allocator()


def get_mode(backend: str) -> str:
    """PyTensor's mode name for a backend, with the process set up for it: no creation tracebacks
    on graph nodes (recording one per node took half of the time to build the training graph;
    PYTENSOR_FLAGS=traceback__limit=8 brings them back for debugging a graph) and, for JAX, the
    patches and the cache of _patch_jax."""
    if backend not in BACKENDS:
        raise BackendError(f"model.backend: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if "traceback__limit" not in os.environ.get("PYTENSOR_FLAGS", ""):
        pytensor.config.traceback__limit = 0
    if backend == "jax":
        _patch_jax()
    return BACKENDS[backend]
