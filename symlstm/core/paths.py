"""Which path each part of a model takes on this machine, and why: the precision of its matrix
products (`model.precision`), its LSTM layers (oneDNN's fused primitive, `model.onednn_lstm`) and
its bf16 products over all steps (oneDNN's matmul, `model.onednn_matmul`).

One decision per model config, from what this process asked the machine and its libraries, never
from what they are assumed to have: the CPU's bf16 units and XLA's cap (`machine.bf16_units`),
the platform JAX compiles for (`machine.jax_platform`: oneDNN's custom calls are registered for
the CPU only) and whether oneDNN makes each primitive at the precision asked (`onednn.runs`, which
sees ONEDNN_MAX_CPU_ISA). `auto` takes a path only where it can run and otherwise goes on through
XLA (the scan, or the LSTM layer Op with `lstm_op`); `on` where it cannot is refused in one line
naming the key, the precision and what is missing. `CompiledModel` keeps its answer (the graph
builders ask again, from the same probes, each made once per process); `symlstm train` prints its
lines, and `make bench` the probes' answers.
"""
import dataclasses

from symlstm.backend import machine, onednn
from symlstm.config import ModelConfig
from symlstm.core.precision import choose
from symlstm.errors import InputError


@dataclasses.dataclass(frozen=True)
class Paths:
    precision: str  # the matrix products' precision, `auto` resolved: float32 | bf16 (| float64 checks)
    onednn_lstm: bool  # LSTM layers through oneDNN's fused primitive
    onednn_matmul: bool  # bf16 products over all steps through oneDNN's matmul
    lines: tuple[str, ...]  # what each part runs and why, one line each


def decide(cfg: ModelConfig, devices: int = 1) -> Paths:
    """The paths of a model of `cfg` here, training over `devices` devices (a mesh, of one process
    or several); raises InputError for an `on` key that cannot run."""
    precision, why = choose(cfg.precision, cfg.backend)
    lstm, lstm_why = _onednn(cfg, "onednn_lstm", "lstm", precision, devices)
    matmul, matmul_why = _onednn(cfg, "onednn_matmul", "matmul", precision, devices)
    if cfg.cell != "lstm":
        layers = f"{cfg.cell} layers: the scan"
    elif lstm:
        layers = f"LSTM layers: oneDNN's fused LSTM in {precision}"
    else:
        layers = "LSTM layers: " + ("the LSTM layer Op (model.lstm_op)" if cfg.lstm_op else "the scan")
        layers += f", {precision} products through {'XLA' if cfg.backend == 'jax' else cfg.backend}"
    products = "oneDNN's matmul" if matmul else ("XLA" if cfg.backend == "jax" else cfg.backend)
    lines = (f"matrix products: {precision} ({why})",
             f"{layers} ({lstm_why})",
             f"output layer's products: {products} ({matmul_why})")
    return Paths(precision, lstm, matmul, lines)


def _onednn(cfg: ModelConfig, key: str, primitive: str, precision: str, devices: int = 1) -> tuple[bool, str]:
    """Whether `model.<key>` puts oneDNN's `primitive` in the graph, and why (or why not)."""
    value = getattr(cfg, key)
    if value == "off":
        return False, f"model.{key} off"
    if devices > 1:  # GSPMD would have to gather every row onto each device around the custom call
        why = f"the batch is split over {devices} devices, and oneDNN's custom calls carry no sharding rules"
        if value == "on":
            raise InputError(f"model.{key} on: {why}; use auto (the layer Op or the scan take over) or train.devices 1")
        return False, f"model.{key} auto: {why}"
    if primitive == "matmul" and precision != "bf16":
        return False, f"model.{key} {value}: it takes bf16 products only, and these are {precision}"
    if primitive == "lstm" and cfg.cell != "lstm":
        return False, f"model.{key} {value}: oneDNN's primitive is an LSTM, and this cell is {cfg.cell}"
    if (cfg.backend, cfg.dtype) != ("jax", "float32"):  # `on` with such a model is refused by the config already
        return False, f"model.{key} {value}: oneDNN runs on the jax backend in float32 parameters only"
    platform = machine.jax_platform()
    if platform != "cpu":
        why = f"JAX compiles for {platform}, and oneDNN's custom calls are registered for the CPU only"
        if value == "on":
            raise InputError(f"model.{key} on: {why}; use auto (it goes on without oneDNN) or off")
        return False, f"model.{key} auto: {why}"
    ok, why = onednn.available()
    if not ok:
        if value == "on":
            raise InputError(f"model.{key}: oneDNN is not available here: {why}")
        return False, f"model.{key} auto: {why}"
    ok, why = onednn.runs(primitive, precision == "bf16")
    if not ok:
        if value == "on":
            raise InputError(f"model.{key} on with precision {precision}: {why}; use auto (it goes on without "
                             f"oneDNN) or precision float32")
        return False, f"model.{key} auto: {why}"
    return True, f"model.{key} {value}: oneDNN {onednn.version().split()[0]}, instruction set {onednn.isa()}"
