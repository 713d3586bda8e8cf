"""Config files and overrides: strict keys with suggestions, types, values, the shipped configs."""
import dataclasses

import pytest

from symlstm.backend.runtime import BACKENDS
from symlstm.config import ConfigError, load_config

from conftest import ROOT


# -- config ---------------------------------------------------------------------------------------
def test_unknown_key_suggests_the_closest(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hiden: 3\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'model.hiden'; did you mean 'hidden'\?"):
        load_config(f)
    f.write_text("trian:\n  max_steps: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'trian'; did you mean 'train'"):
        load_config(f)


def test_wrong_type_and_bad_values(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  hidden: big\n")
    with pytest.raises(ConfigError, match="model.hidden: expected int, got str 'big'"):
        load_config(f)
    with pytest.raises(ConfigError, match="train.optimizer: 'adamw' is not one of"):
        load_config(overrides=["train.optimizer=adamw"])
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="train.weight_decay 0.1 is AdamW's decoupled decay: it needs train.optimizer adam"):
        load_config(overrides=["train.weight_decay=0.1", "train.optimizer=sgd"])
    with pytest.raises(ConfigError, match=r"model.weight_dropout: must be in \[0, 1\), got 1.0"):
        load_config(overrides=["model.weight_dropout=1.0"])
    with pytest.raises(ConfigError, match=r"train.decay_fraction: must be in \(0, 1\], got 0.0"):
        load_config(overrides=["train.decay_fraction=0"])
    with pytest.raises(ConfigError, match=r"train.ema: must be in \[0, 1\), got 1.0"):
        load_config(overrides=["train.ema=1"])
    with pytest.raises(ConfigError, match="model.mogrifier_rounds: must be between 1 and 16, got 0"):
        load_config(overrides=["model.mogrifier_rounds=0"])
    with pytest.raises(ConfigError, match="model.cell: 'mogrify' is not one of lstm, gru, rnn, mogrifier"):
        load_config(overrides=["model.cell=mogrify"])


@pytest.mark.parametrize("key,needs,backend", [("onednn_lstm", "cell lstm, backend jax and dtype float32", "c"),
                                                ("onednn_matmul", "backend jax and dtype float32", "numba")])
def test_onednn_keys_are_off_on_or_auto(key, needs, backend):
    assert [getattr(load_config(overrides=[f"model.{key}={v}"]).model, key)
            for v in ("true", "false", "on", "off", "auto")] == ["on", "off", "on", "off", "auto"]
    with pytest.raises(ConfigError, match=f"model.{key}: 'sometimes' is not one of off, on, auto"):
        load_config(overrides=[f"model.{key}=sometimes"])
    with pytest.raises(ConfigError, match=f"model.{key} on needs {needs}"):
        load_config(overrides=[f"model.{key}=on", f"model.backend={backend}"])
    assert load_config(overrides=[f"model.{key}=auto", f"model.backend={backend}"]).model.backend == backend


def test_overrides_and_name(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("model:\n  hidden: 3\n")
    cfg = load_config(f, ["model.hidden=512", "train.learning_rate=0.002", "data.path=x.txt"])
    assert (cfg.model.hidden, cfg.train.learning_rate, cfg.data.path, cfg.name) == (512, 0.002, "x.txt", "mine")


def test_base_file_lies_underneath(tmp_path):
    (tmp_path / "recipe.yaml").write_text("name: recipe\nmodel:\n  hidden: 64\n  num_layers: 2\ntrain:\n  max_steps: 7\n")
    (tmp_path / "mine.yaml").write_text("base: recipe.yaml\nmodel:\n  hidden: 32\n")
    cfg = load_config(tmp_path / "mine.yaml", ["train.max_steps=9"])
    # the child's keys win, the base's others stay, --set wins over both, the run is named after the child
    assert (cfg.model.hidden, cfg.model.num_layers, cfg.train.max_steps, cfg.name) == (32, 2, 9, "mine")
    (tmp_path / "lost.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="nowhere.yaml: config file not found"):
        load_config(tmp_path / "lost.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="b.yaml: base a.yaml leads back to b.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "odd.yaml").write_text("base: [poems.yaml]\n")
    with pytest.raises(ConfigError, match="odd.yaml: base must name a config file"):
        load_config(tmp_path / "odd.yaml")


def test_shipped_configs_are_valid():
    shipped = sorted(f.stem for f in (ROOT / "configs").glob("*.yaml"))
    assert {"tiny", "poems", "poems-long", "tang", "couplets", "ci", "all"} <= set(shipped)
    for name in shipped:
        load_config(ROOT / "configs" / f"{name}.yaml")
    # the corpora's configs train poems.yaml's recipe: one home for it
    recipe = load_config(ROOT / "configs" / "poems.yaml")
    for name in ("couplets", "ci", "all"):
        cfg = load_config(ROOT / "configs" / f"{name}.yaml")
        assert cfg.model == recipe.model and cfg.train.learning_rate == recipe.train.learning_rate, name
    # the long run is the same recipe, weight average and decay included, with its dropouts raised and its
    # budget longer (docs/training.md)
    long = load_config(ROOT / "configs" / "poems-long.yaml")
    raised = ("dropout_input", "dropout_hidden", "dropout_output", "weight_dropout")
    assert all(getattr(long.model, k) > getattr(recipe.model, k) for k in raised)
    assert dataclasses.replace(long.model, **{k: getattr(recipe.model, k) for k in raised}) == recipe.model
    assert long.data == recipe.data and long.train.time_budget == 2400
    assert dataclasses.replace(long.train, time_budget=recipe.train.time_budget,
                               max_epochs=recipe.train.max_epochs) == recipe.train
    assert recipe.train.ema == long.train.ema == 0.998 and recipe.train.weight_decay == long.train.weight_decay == 0.1
    # the long budget spent as pretraining on every shi, then the quatrains: the same model (so that the
    # checkpoint fits), the same split fractions (so that a test quatrain is a test poem in both), the
    # pretraining's own run directory, and 2,400 s in all
    shi, tuned = (load_config(ROOT / "configs" / f"{name}.yaml") for name in ("shi", "poems-pretrained"))
    assert shi.model == tuned.model == recipe.model and tuned.data == recipe.data
    assert (shi.data.valid_fraction, shi.data.test_fraction) == (recipe.data.valid_fraction, recipe.data.test_fraction)
    assert tuned.train.init_from == f"runs/{shi.name}/best.h5"
    assert shi.train.time_budget + tuned.train.time_budget == long.train.time_budget


def test_backend_choices_come_from_the_runtime_table():
    for name in BACKENDS:
        assert load_config(overrides=[f"model.backend={name}"]).model.backend == name
    with pytest.raises(ConfigError, match="'tpu' is not one of jax, c, numba"):
        load_config(overrides=["model.backend=tpu"])


def test_form_choices_come_from_the_forms_table():
    for name in ("any", "jueju", "lvshi", "wujue", "qilv"):
        load_config(overrides=[f"data.form={name}"])
    with pytest.raises(ConfigError, match="data.form: 'ci' is not one of"):
        load_config(overrides=["data.form=ci"])


def test_devices_all_means_every_local_device():
    assert load_config(overrides=["train.devices=all"]).train.devices == 0
    assert load_config(overrides=["train.devices=2"]).train.devices == 2
    assert load_config().train.devices == 1
