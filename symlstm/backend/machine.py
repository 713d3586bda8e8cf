"""This machine and what symlstm measured about it: the CPU's name and feature flags, where XLA's
compilation cache lives, and a small file of measurements kept beside that cache (whether bf16
products are faster here, say), keyed by machine so that a copied home directory does not mislead.

Nothing here imports PyTensor, and JAX only to ask which platform it compiles for; the
measurements themselves are made by their owners.
"""
import json
import os
import platform
import re

# The CPU flags that mean bf16 arithmetic units: x86's AVX512_BF16 and AMX-BF16, aarch64's BF16.
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
# XLA's --xla_cpu_max_isa values below the first x86 level with bf16 instructions (AVX512_BF16).
_XLA_BELOW_BF16 = ("SSE4_2", "AVX", "AVX2", "AVX512", "AVX512_VNNI", "NEON", "SVE", "SVE2")
# XLA's and oneDNN's cap values below AVX-512 (oneDNN's ONEDNN_MAX_CPU_ISA names: SSE41, AVX2_VNNI …).
_BELOW_AVX512 = ("SSE4_2", "SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2")


# The caps that make a CPU with AVX-512 run as the AVX2 class (docs/speed.md#machine-classes): XLA's,
# oneDNN's (PyTorch's LSTM and matmul are oneDNN's too), PyTorch's own kernels', MKL's. The one home
# of these names: `make test-avx2` (through `avx2_shell`) and `symlstm bench --isa avx2` read them here.
AVX2_CAPS = {"XLA_FLAGS": "--xla_cpu_max_isa=AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def avx2_env(env: dict) -> dict:
    """`env` with the AVX2 caps set (XLA's appended to the XLA_FLAGS already there)."""
    env = dict(env)
    for k, v in AVX2_CAPS.items():
        env[k] = f"{env[k]} {v}" if k == "XLA_FLAGS" and env.get(k) else v
    return env


def cpu_flags() -> set:
    """The CPU's feature flags (avx512_bf16, amx_bf16 …; aarch64's Features: bf16, sve …) from
    /proc/cpuinfo; empty elsewhere (macOS)."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def xla_isa_cap() -> str:
    """The instruction-set cap XLA was given (XLA_FLAGS=--xla_cpu_max_isa=AVX2 → "AVX2"), or ""."""
    found = re.findall(r"--xla_cpu_max_isa=(\w+)", os.environ.get("XLA_FLAGS", ""))
    return found[-1].upper() if found else ""


def bf16_units() -> tuple[bool, str]:
    """Whether XLA can use bf16 arithmetic units here: (True, which) or (False, why not). Read from
    the CPU's flags and XLA's cap, never timed: a CPU without them only emulates bf16."""
    have = [f for f in BF16_FLAGS if f in cpu_flags()]
    if not have:
        return False, f"no bf16 units on this CPU (none of {', '.join(BF16_FLAGS)} among its flags)"
    cap = xla_isa_cap()
    if cap in _XLA_BELOW_BF16:
        return False, f"XLA_FLAGS caps XLA at {cap}, below the CPU's bf16 units ({', '.join(have)})"
    return True, f"bf16 units: {', '.join(have)}"


def isa_class() -> str:
    """The class of machine the figures of `make bench` belong to: "AVX-512 BF16", "AVX-512",
    "AVX2", "aarch64" or the architecture's name, with XLA's and oneDNN's caps applied (the CPU
    under XLA_FLAGS=--xla_cpu_max_isa=AVX2 and ONEDNN_MAX_CPU_ISA=AVX2 is measured as AVX2; one
    library capped alone is not, and `make bench` names the caps beside the class)."""
    arch = platform.machine().lower()
    if arch in ("aarch64", "arm64"):
        return "aarch64"
    flags = cpu_flags()
    capped = xla_isa_cap() in _BELOW_AVX512 and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _BELOW_AVX512
    if "avx512f" in flags and not capped:  # both libraries capped below AVX-512: measured as the AVX2 class
        return "AVX-512 BF16" if bf16_units()[0] else "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    return arch or "unknown"


def machine() -> str:
    """'CPU model, N cores', as `make bench` and the measurements below name this machine."""
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def jax_cache_dir() -> str:
    """XLA's persistent compilation cache: SYMLSTM_JAX_CACHE, else ~/.cache/symlstm/jax. Its parent
    also keeps what symlstm measured of this machine (`measured`)."""
    return os.environ.get("SYMLSTM_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "symlstm", "jax")


def jax_platform() -> str:
    """The platform JAX compiles for by default ("cpu", "gpu", "tpu"): what the JAX backend's
    functions run on, and so whether CPU-only kernels (oneDNN's custom calls) may enter them."""
    import jax

    return jax.default_backend()


def measured(name: str, key: str, measure, refresh: bool = False):
    """A measurement of this machine: `name`.json beside the JAX cache maps keys (the machine and
    what else the answer depends on) to answers; `measure()` runs only for a key not yet there (or
    with `refresh`), and its answer is kept when the file can be written."""
    path = os.path.join(os.path.dirname(jax_cache_dir().rstrip("/")), f"{name}.json")
    key = f"{machine()} | {key}"
    try:
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    if refresh or key not in known:
        known[key] = measure()
        try:  # through a temporary file: processes measuring at once (tests in parallel) never read half a file
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.{os.getpid()}.tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(known, f, indent=1)
            os.replace(tmp, path)
        except OSError:
            pass
    return known[key]


def avx2_shell() -> str:
    """The AVX2 caps as shell words (`make test-avx2` puts them before pytest)."""
    import shlex
    return " ".join(f"{k}={shlex.quote(v)}" for k, v in avx2_env({"XLA_FLAGS": os.environ.get("XLA_FLAGS", "")}).items())
