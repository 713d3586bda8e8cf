"""oneDNN's fused LSTM layer, called from JAX through XLA FFI (`lstm_ffi.cc`), with its own gradient.

PyTorch's `nn.LSTM` on CPU runs one oneDNN primitive per layer over all time steps; this module
makes the same primitive callable from the JAX backend: `lstm_layer(x, W, U, b, h0, c0)` returns
(hs, hT, cT) and differentiates through oneDNN's backward primitive, which reads the gates the
forward saved in its workspace.

It is optional. `make onednn` installs the self-contained GNU-OpenMP build of oneDNN from PyPI
(`onednn-cpu-gomp`, with its headers in `onednn-devel-cpu-gomp`: oneDNN 3.2) and compiles
`_lstm_ffi.so` beside this file; `available()` says whether that library is there and loads, and
why not, and `version()` names the oneDNN it runs. Without it (no compiler, no oneDNN, or a wheel of
symlstm installed outside the checkout) nothing here is used.

Besides the LSTM, `matmul(a, b)` runs oneDNN's matmul primitive (what PyTorch's `Linear` runs under
autocast), for the bf16 products of `model.onednn_matmul` (`core/precision.py`).

What oneDNN's LSTM does not do, the caller must not ask of it: it has no mask, so a padded row's
states run on through its padding (its hT, cT are those of the padded end, where the masked scan
keeps the last real step's); with zero initial states and padding only at the end of each row, the
outputs at real steps, and so a masked loss and its gradient, are the same.
"""
import ctypes
import os
import shutil
import subprocess
import sysconfig
from functools import lru_cache
from pathlib import Path

from symlstm.errors import UserError

HERE = Path(__file__).parent
SOURCE = HERE / "lstm_ffi.cc"
LIBRARY = HERE / "_lstm_ffi.so"


def threads() -> int:
    """OpenMP threads per call: $SYMLSTM_ONEDNN_THREADS, else every core the process may use. XLA
    waits for the call, so they do not contend with its workers: measured on 2 cores, two threads
    made bench shape B's float32 step far faster than one and were even elsewhere (docs/speed.md)."""
    value = os.environ.get("SYMLSTM_ONEDNN_THREADS", "")
    if not value:
        return len(os.sched_getaffinity(0))
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"SYMLSTM_ONEDNN_THREADS={value!r}: expected a number of threads, 1 or more")
    return int(value)


def _prefix_dirs() -> tuple[Path, Path]:
    """Where pip put oneDNN's wheels' data: <environment>/include and <environment>/lib."""
    data = Path(sysconfig.get_path("data"))
    return data / "include", data / "lib"


def build(verbose: bool = True) -> Path:
    """Compile `_lstm_ffi.so` against the installed oneDNN and jaxlib's FFI headers (`make onednn`);
    what is missing for it is a one-line UserError."""
    import jax

    include, lib = _prefix_dirs()
    if not (include / "oneapi" / "dnnl" / "dnnl.hpp").is_file():
        raise UserError(f"{include}/oneapi/dnnl/dnnl.hpp: oneDNN's headers are not installed "
                        "(pip install onednn-devel-cpu-gomp)")
    if shutil.which("g++") is None:
        raise UserError("g++: not found; oneDNN's LSTM needs a C++ compiler (without it, LSTMs train through the scan)")
    command = ["g++", "-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp", str(SOURCE), f"-I{include}",
               f"-I{jax.ffi.include_dir()}", f"-L{lib}", "-ldnnl", f"-Wl,-rpath,{lib}", "-w", "-o", str(LIBRARY)]
    if verbose:
        print(" ".join(command))
    subprocess.run(command, check=True)
    return LIBRARY


@lru_cache(maxsize=1)
def _library():
    """The loaded library with its FFI targets registered in JAX, or the reason it is not there."""
    if not LIBRARY.is_file():
        return f"{LIBRARY.name} is not built (make onednn)"
    try:
        lib = ctypes.cdll.LoadLibrary(str(LIBRARY))
    except OSError as err:
        return f"{LIBRARY.name} does not load: {err}"
    if not hasattr(lib, "symlstm_matmul_supported"):
        return f"{LIBRARY.name} is older than {SOURCE.name} (make onednn)"
    import jax

    for name in ("SymlstmLstmForward", "SymlstmLstmBackward", "SymlstmMatmul"):
        jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(getattr(lib, name)), platform="cpu")
    lib.symlstm_lstm_workspace.restype = ctypes.c_size_t
    lib.symlstm_lstm_workspace.argtypes = [ctypes.c_int64] * 4 + [ctypes.c_int]
    lib.symlstm_onednn_version.restype = ctypes.c_char_p
    lib.symlstm_onednn_isa.restype = ctypes.c_char_p
    lib.symlstm_matmul_supported.argtypes = [ctypes.c_int]
    return lib


def available() -> tuple[bool, str]:
    """(True, "") where the oneDNN LSTM can run, else (False, why not)."""
    lib = _library()
    return (True, "") if not isinstance(lib, str) else (False, lib)


def version() -> str:
    """The oneDNN the library runs, as "3.2.0 (commit 4011219)"; "" where it is not available."""
    lib = _library()
    return "" if isinstance(lib, str) else lib.symlstm_onednn_version().decode()


def isa() -> str:
    """The instruction set oneDNN dispatches to here, as oneDNN names it ("avx512_core_bf16", "avx2"
    …): the CPU's own, or lower where ONEDNN_MAX_CPU_ISA caps it; "" where it is not available."""
    lib = _library()
    return "" if isinstance(lib, str) else lib.symlstm_onednn_isa().decode()


@lru_cache(maxsize=4)
def runs(primitive: str, bf16: bool) -> tuple[bool, str]:
    """Whether oneDNN makes its `primitive` ("lstm" or "matmul") at this precision on this CPU:
    (True, "") or (False, why not). Found out once per process by creating the primitive's
    descriptor at a small shape, which is how oneDNN itself says what it has: its bf16 kernels
    exist only for some instruction sets (oneDNN 3.2: none on a CPU without AVX-512, or under
    ONEDNN_MAX_CPU_ISA=AVX2), its float32 ones everywhere it runs."""
    ok, why = available()
    if not ok:
        return False, why
    lib = _library()
    made = lib.symlstm_lstm_workspace(2, 2, 4, 4, int(bf16)) > 0 if primitive == "lstm" \
        else lib.symlstm_matmul_supported(int(bf16)) == 1
    if made:
        return True, ""
    missing = "" if isa().startswith("avx512_core") else ", no AVX512_CORE"
    return False, (f"oneDNN {version().split()[0]} has no {'bf16' if bf16 else 'float32'} {primitive} "
                   f"on this CPU (its instruction set: {isa()}{missing})")


def workspace_bytes(T: int, B: int, E: int, H: int, bf16: bool) -> int:
    """The size of the gates' workspace the forward leaves for the backward."""
    size = _library().symlstm_lstm_workspace(T, B, E, H, int(bf16))
    if not size:
        raise ValueError(f"oneDNN refuses an LSTM of T {T}, B {B}, E {E}, H {H}, bf16 {bf16}")
    return size


def forward(bf16: bool, x, W, U, b, h0, c0):
    """The forward custom call: hs, hT, cT (float32) and the workspace (uint8) of the saved gates."""
    import jax
    import jax.numpy as jnp

    T, B, E = x.shape
    H = h0.shape[1]
    low = jnp.bfloat16 if bf16 else jnp.float32
    out = (jax.ShapeDtypeStruct((T, B, H), low), jax.ShapeDtypeStruct((B, H), low),
           jax.ShapeDtypeStruct((B, H), jnp.float32),
           jax.ShapeDtypeStruct((workspace_bytes(T, B, E, H, bf16),), jnp.uint8))
    call = jax.ffi.ffi_call("SymlstmLstmForward", out, vmap_method="sequential")
    hs, hT, cT, ws = call(x.astype(low), W.astype(low), U.astype(low), b.astype(jnp.float32), h0.astype(low),
                          c0.astype(jnp.float32), bf16=bf16, threads=threads())
    return hs.astype(jnp.float32), hT.astype(jnp.float32), cT, ws


def backward(bf16: bool, x, W, U, b, h0, c0, hs, hT, cT, ws, d_hs, d_hT, d_cT):
    """The backward custom call: ∂ of x, W, U, b, h0, c0 (float32) from those of hs, hT, cT."""
    import jax
    import jax.numpy as jnp

    low = jnp.bfloat16 if bf16 else jnp.float32
    f32 = jnp.float32
    out = tuple(jax.ShapeDtypeStruct(v.shape, f32) for v in (x, W, U, b, h0, c0))
    call = jax.ffi.ffi_call("SymlstmLstmBackward", out, vmap_method="sequential")
    return call(x.astype(low), W.astype(low), U.astype(low), b.astype(f32), h0.astype(low), c0.astype(f32),
                hs.astype(low), hT.astype(low), cT.astype(f32), ws, d_hs.astype(f32), d_hT.astype(f32),
                d_cT.astype(f32), bf16=bf16, threads=threads())


def matmul(a, b, transpose_a: bool = False, transpose_b: bool = False):
    """op(a) · op(b) (2-D, float32 out) by oneDNN's matmul primitive, each factor read in the layout
    it comes in (op transposes where the flag says so); bf16 factors give bf16 products summed in
    float32, float32 factors float32 ones. Not differentiable: `precision.Bf16Dot` states the gradient."""
    import jax
    import jax.numpy as jnp

    ok, why = available()  # loading the library registers its custom calls
    if not ok:
        raise RuntimeError(f"oneDNN's matmul is not available: {why}")
    M = a.shape[1] if transpose_a else a.shape[0]
    N = b.shape[0] if transpose_b else b.shape[1]
    bf16 = a.dtype == jnp.bfloat16
    call = jax.ffi.ffi_call("SymlstmMatmul", jax.ShapeDtypeStruct((M, N), jnp.float32), vmap_method="sequential")
    return call(a, b, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b), bf16=bool(bf16),
                threads=threads())


@lru_cache(maxsize=2)
def _layer(bf16: bool):
    import jax

    @jax.custom_vjp
    def layer(x, W, U, b, h0, c0):
        return forward(bf16, x, W, U, b, h0, c0)[:3]

    def fwd(x, W, U, b, h0, c0):
        hs, hT, cT, ws = forward(bf16, x, W, U, b, h0, c0)
        return (hs, hT, cT), (x, W, U, b, h0, c0, hs, hT, cT, ws)

    def bwd(saved, grads):
        d = backward(bf16, *saved, *grads)
        return tuple(g.astype(v.dtype) for g, v in zip(d, saved[:6]))

    layer.defvjp(fwd, bwd)
    return layer


def lstm_layer(x, W, U, b, h0, c0, bf16: bool = False):
    """One LSTM layer over all steps: x (T, B, E), W (E, 4H), U (H, 4H), b (4H), h0 and c0 (B, H)
    -> hs (T, B, H), hT, cT (B, H), float32, differentiable (`jax.grad`, `jax.vjp`). `bf16`: bf16
    products and storage as oneDNN's bf16 LSTM, float32 cell state and gradients."""
    ok, why = available()
    if not ok:
        raise RuntimeError(f"the oneDNN LSTM is not available: {why}")
    return _layer(bool(bf16))(x, W, U, b, h0, c0)
