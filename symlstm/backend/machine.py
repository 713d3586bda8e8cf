"""This machine and what symlstm measured about it: the CPU's name and feature flags, where XLA's
compilation cache lives, and a small file of measurements kept beside that cache (whether bf16
products are faster here, say), keyed by machine so that a copied home directory does not mislead.

Nothing here imports JAX or PyTensor; the measurements themselves are made by their owners.
"""
import json
import os


def cpu_flags() -> set:
    """The CPU's feature flags (avx512_bf16, amx_bf16 …) from /proc/cpuinfo; empty elsewhere."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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


def measured(name: str, key: str, measure):
    """A measurement of this machine: `name`.json beside the JAX cache maps keys (the machine and
    what else the answer depends on) to answers; `measure()` runs only for a key not yet there, and
    its answer is kept when the file can be written."""
    path = os.path.join(os.path.dirname(jax_cache_dir().rstrip("/")), f"{name}.json")
    key = f"{machine()} | {key}"
    try:
        with open(path, encoding="utf-8") as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = measure()
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                json.dump(known, f, indent=1)
        except OSError:
            pass
    return known[key]
