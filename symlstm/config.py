"""Configuration: defaults in code (one comment per key), YAML files hold only overrides.

Owns the schema, its validation (unknown keys get the closest valid key suggested, wrong types are
named) and `--set section.key=value` overrides. It does not read corpora or build models.
"""
import dataclasses
import difflib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from symlstm.backend.runtime import BACKENDS
from symlstm.errors import UserError
from symlstm.poetics.forms import FORM_GROUPS, FORMS
from symlstm.poetics.script import LOST_MARKS

MAIN_JOB = "configs/poems.yaml"  # `make train`'s job (relative to the project root): the default corpus and bench row


class ConfigError(UserError, ValueError):
    """A user mistake in a config file or an override."""


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # recurrent cell: lstm | gru | rnn (tanh) | mogrifier (the Mogrifier LSTM, Melis et al. 2020)
    mogrifier_rounds: int = 5  # cell mogrifier: rounds in which input and state gate each other before the LSTM step
    embedding: int = 128  # E, size of the character embedding
    hidden: int = 256  # H, size of each recurrent layer (char-rnn's rnn_size)
    num_layers: int = 1  # L, stacked recurrent layers
    dropout: float = 0.0  # drop probability between layers and before the output layer (training only)
    dropout_embed: float = 0.0  # embedding dropout: whole characters' rows zeroed for a batch (AWD-LSTM's dropoute)
    dropout_input: float = 0.0  # locked dropout on the embedding output, one mask per sequence (dropouti)
    dropout_hidden: float = 0.0  # locked dropout between layers (dropouth)
    dropout_output: float = 0.0  # locked dropout on the last layer's output (AWD-LSTM's dropout)
    weight_dropout: float = 0.0  # DropConnect on each layer's recurrent U, one mask per batch (wdrop)
    lstm_op: bool = False  # train through the LSTM layer Op (core/lstm_layer.py): a hand-written backward pass
    onednn_lstm: str = "off"  # LSTM layers as oneDNN's fused primitive: off | on | auto (where built and it runs the precision)
    onednn_matmul: str = "off"  # bf16 products over all steps (output layer) on oneDNN's matmul: off | on | auto
    tie_weights: bool = False  # output layer = embedding transposed (after a learned H -> E projection if H != E)
    init: str = "uniform"  # weight init: uniform (±init_scale, char-rnn) | xavier | orthogonal (recurrent U) | pytorch
    init_scale: float = 0.08  # half-width of the uniform init
    forget_bias: float = 1.0  # initial bias of the LSTM forget gate
    dtype: str = "float32"  # float32 for training, float64 for gradient checks
    precision: str = "float32"  # matrix products: float32 | bf16 (bf16 factors, float32 sums) | auto (bf16 where faster)
    backend: str = "jax"  # compiled backend: jax (fastest measured) | c | numba


@dataclass(frozen=True)
class DataConfig:
    path: str = "data/tang_quatrains.txt"  # corpus file or glob, relative to the config's project root
    format: str = "lines"  # lines (one poem per line) | json (chinese-poetry files) | text (one stream)
    min_count: int = 1  # characters seen fewer times become <unk>
    drop_marks: str = LOST_MARKS  # poems holding any of these lost-character marks are dropped
    min_length: int = 0  # drop poems shorter than this many characters (0: no limit)
    max_length: int = 0  # drop poems longer than this many characters (0: no limit)
    form: str = "any"  # keep only this form: any | jueju | wujue | qijue | lvshi | wulv | qilv
    valid_fraction: float = 0.05  # share of poems in the validation split (by hash of the text)
    test_fraction: float = 0.05  # share of poems in the test split
    mode: str = "poem"  # poem: <bos> poem <eos> rows, bucketed | stream: truncated-BPTT windows
    batch_size: int = 32  # B, rows per batch
    seq_length: int = 64  # T of a stream window (stream mode only)
    length_multiple: int = 1  # poem mode: round each batch's T up to a multiple (fewer shapes to compile)
    bucket_pool: int = 50  # poem mode: batches per pool sorted by length (larger: less padding, less random)
    cache: bool = True  # cache the encoded corpus as HDF5 under data/cache
    form_tokens: bool = False  # start each poem with a token naming its form (<wujue>, <ci:浣溪沙> …) instead of <bos>


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"  # sgd | momentum | adam | rmsprop | adadelta
    learning_rate: float = 0.002  # base step size (unused by adadelta)
    momentum: float = 0.9  # momentum coefficient (momentum optimizer)
    beta1: float = 0.9  # Adam first-moment decay
    beta2: float = 0.999  # Adam second-moment decay
    decay: float = 0.95  # RMSprop / Adadelta running-average decay (rho)
    eps: float = 1.0e-8  # numerical floor in Adam / RMSprop / Adadelta
    grad_clip: float = 5.0  # clip the global gradient norm to this (0: off)
    ema: float = 0.0  # weight averaging: decay β of an exponential moving average of the parameters (0: off); validation, checkpoints and samples use the average
    schedule: str = "constant"  # constant | step (char-rnn) | cosine | linear (both to zero at the budget's end)
    warmup_steps: int = 0  # linear warm-up steps (cosine and linear schedules)
    decay_fraction: float = 1.0  # cosine and linear: decay over this last fraction of the run, at the peak before
    weight_decay: float = 0.0  # AdamW's decoupled decay of the matrices (not the biases); adam only
    decay_embedding: bool = True  # weight_decay also shrinks the embedding (the output matrix too, when tied)
    decay_after: int = 10  # step schedule: start decaying after this epoch (char-rnn)
    decay_rate: float = 0.97  # step schedule: multiply the rate by this each epoch after decay_after
    max_epochs: int = 10  # stop after this many epochs
    max_steps: int = 0  # stop after this many steps (0: no limit)
    time_budget: float = 0.0  # stop after this many seconds of training (0: no limit)
    eval_every: int = 200  # validate (and checkpoint) every this many steps, and when the run ends
    patience: int = 0  # early stopping: validations without improvement before stopping (0: off)
    seed: int = 1234  # seeds initialization, shuffling and dropout
    init_from: str = ""  # a checkpoint to start from (pretraining): its parameters, the vocabulary mapped by character; optimizer and schedule start afresh
    devices: int = 1  # split each batch over this many devices, data-parallel (jax backend); 0 or all: every one
    num_samples: int = 3  # samples printed at each validation
    sample_temperature: float = 0.8  # temperature of those samples


@dataclass(frozen=True)
class Config:
    name: str = "default"  # run name: runs/<name> is the default run directory
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}
# The valid values of keys that take a name. The cells and the optimizers are not listed here: the
# modules that implement them declare their names (`choices`, called by core/cells.py and
# core/optim.py when they are imported, as `import symlstm` does), so the schema never repeats them.
CHOICES = {
    ("model", "init"): ("uniform", "xavier", "orthogonal", "pytorch"),
    ("model", "dtype"): ("float32", "float64"),
    ("model", "precision"): ("float32", "bf16", "auto"),
    ("model", "onednn_lstm"): ("off", "on", "auto"),
    ("model", "onednn_matmul"): ("off", "on", "auto"),
    ("model", "backend"): tuple(BACKENDS),
    ("data", "format"): ("lines", "json", "text"),
    ("data", "form"): ("any", *FORM_GROUPS, *FORMS),
    ("data", "mode"): ("poem", "stream"),
    ("train", "schedule"): ("constant", "step", "cosine", "linear"),
}
POSITIVE = {("model", "embedding"), ("model", "hidden"), ("model", "num_layers"),
            ("data", "batch_size"), ("data", "seq_length"), ("data", "min_count"), ("data", "length_multiple"),
            ("data", "bucket_pool")}


def choices(section: str, key: str, names) -> None:
    """Declare the valid values of `section.key`: the names of what the calling module implements."""
    CHOICES[(section, key)] = tuple(names)


def _suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(valid)}"


def _coerce(where: str, value, typ):
    if typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where}: expected {typ.__name__}, got {type(value).__name__} {value!r}")


def _check_value(section: str, key: str, value, where: str):
    allowed = CHOICES.get((section, key))
    if allowed and value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    if (section, key) in POSITIVE and not 1 <= value <= 65536:  # past that, memory runs out before anything else
        raise ConfigError(f"{where}: must be between 1 and 65536, got {value}")
    if (section, key) == ("train", "devices") and value < 0:
        raise ConfigError(f"{where}: must be a device count, 0 or 'all', got {value}")
    if key in ("beta1", "beta2", "decay", "momentum", "ema") and not 0 <= value < 1:  # Adam divides by 1 - beta^t
        raise ConfigError(f"{where}: must be in [0, 1), got {value}")
    if key in ("learning_rate", "eps", "init_scale") and not value > 0:
        raise ConfigError(f"{where}: must be above 0, got {value}")
    if key == "decay_fraction" and not 0 < value <= 1:
        raise ConfigError(f"{where}: must be in (0, 1], got {value}")
    if key == "weight_decay" and not 0 <= value < 1:
        raise ConfigError(f"{where}: must be in [0, 1), got {value}")
    if key == "mogrifier_rounds" and not 1 <= value <= 16:
        raise ConfigError(f"{where}: must be between 1 and 16, got {value}")
    if key == "seed" and not 0 <= value < 2 ** 32:
        raise ConfigError(f"{where}: must be between 0 and 2**32 - 1, got {value}")
    if key in ("dropout", "dropout_embed", "dropout_input", "dropout_hidden", "dropout_output", "weight_dropout",
               "valid_fraction", "test_fraction") and not 0 <= value < 1:
        raise ConfigError(f"{where}: must be in [0, 1), got {value}")


def from_dict(raw: dict, source: str = "config") -> Config:
    """Validate a nested dict (as read from YAML) into a Config."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}")
    top = {"name"} | set(SECTIONS)
    kwargs = {}
    for key, value in raw.items():
        if key not in top:
            raise ConfigError(f"{source}: unknown key '{key}'{_suggest(key, sorted(top))}")
        if key == "name":
            kwargs["name"] = _coerce(f"{source}: name", value, str)
            continue
        cls = SECTIONS[key]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: section '{key}' must be a mapping")
        types = {f.name: f.type for f in fields(cls)}
        section = {}
        for k, v in value.items():
            if k not in types:
                raise ConfigError(f"{source}: unknown key '{key}.{k}'{_suggest(k, list(types))}")
            typ = {"int": int, "float": float, "str": str, "bool": bool}[types[k]] if isinstance(types[k], str) else types[k]
            if (key, k, v) == ("train", "devices", "all"):
                v = 0
            if (key, k) in (("model", "onednn_lstm"), ("model", "onednn_matmul")) and isinstance(v, bool):
                v = "on" if v else "off"  # YAML reads on/off/true/false as booleans
            section[k] = _coerce(f"{source}: {key}.{k}", v, typ)
            _check_value(key, k, section[k], f"{source}: {key}.{k}")
        kwargs[key] = cls(**section)
    cfg = Config(**kwargs)
    if cfg.data.valid_fraction + cfg.data.test_fraction >= 1:
        raise ConfigError(f"{source}: data.valid_fraction + data.test_fraction must be below 1")
    if cfg.model.precision != "float32" and cfg.model.dtype != "float32":
        raise ConfigError(f"{source}: model.precision {cfg.model.precision} needs model.dtype float32 (the master "
                          f"parameters), got {cfg.model.dtype}")
    if cfg.model.onednn_lstm == "on" and (cfg.model.cell, cfg.model.backend, cfg.model.dtype) != ("lstm", "jax", "float32"):
        raise ConfigError(f"{source}: model.onednn_lstm on needs cell lstm, backend jax and dtype float32 (oneDNN's "
                          f"LSTM is a JAX custom call), got {cfg.model.cell}, {cfg.model.backend}, {cfg.model.dtype}; "
                          "auto uses it only where it can")
    if cfg.model.onednn_matmul == "on" and (cfg.model.backend, cfg.model.dtype) != ("jax", "float32"):
        raise ConfigError(f"{source}: model.onednn_matmul on needs backend jax and dtype float32 (oneDNN's matmul "
                          f"is a JAX custom call), got {cfg.model.backend}, {cfg.model.dtype}; auto uses it only "
                          "where it can")
    if cfg.train.weight_decay and cfg.train.optimizer != "adam":
        raise ConfigError(f"{source}: train.weight_decay {cfg.train.weight_decay} is AdamW's decoupled decay: it needs "
                          f"train.optimizer adam, got {cfg.train.optimizer}")
    return cfg


def parse_override(text: str) -> tuple[list[str], object]:
    """'model.hidden=512' -> (['model', 'hidden'], 512); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    key, value = text.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key.strip().split("."), parsed


def load_config(path: str | Path | None = None, overrides=(), raw: dict | None = None) -> Config:
    """Read a YAML file (or start from `raw` / the defaults) and apply `--set` overrides."""
    data: dict = {}
    source = "config"
    if path is not None:
        source = str(path)
        data = _read_yaml(Path(path), ())
        data.setdefault("name", Path(path).stem)
    if raw:
        data = _merge(data, raw)
    for text in overrides:
        keys, value = parse_override(text)
        alone = value
        for k in reversed(keys):
            alone = {k: alone}
        from_dict(alone, source=f"--set {text}")  # a mistake in an override is named as the override's
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: '{k}' is not a section")
        node[keys[-1]] = value
    return from_dict(data, source)


def _read_yaml(path: Path, chain: tuple) -> dict:
    """One config file's mapping, with the file its `base:` key names (beside it) merged underneath."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    if "base" not in data:
        return data
    name = data.pop("base")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}: base must name a config file beside it, e.g. 'base: poems.yaml', not {name!r}")
    base = path.parent / name
    if base.resolve() in chain + (path.resolve(),):
        raise ConfigError(f"{path}: base {name} leads back to {path.name}")
    under = _read_yaml(base, chain + (path.resolve(),))
    under.pop("name", None)  # a run is named after the file asked for, not its base
    return _merge(under, data)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out.get(k) or {}, v) if isinstance(v, dict) else v
    return out
