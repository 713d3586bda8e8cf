"""User mistakes at the command line: one line on stderr, exit code 2, no traceback."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT


def run(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "symlstm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "configs/nope.yaml"], "configs/nope.yaml: config file not found"),
    (["train", "--config", "configs/tiny.yaml", "--set", "model.hiden=3"], "did you mean 'hidden'"),
    (["train", "--config", "configs/tiny.yaml", "--set", "data.path=missing/*.txt"], "glob matches no file"),
    (["sample", "--checkpoint", "runs/none/best.h5"], "best.h5: checkpoint not found"),
    (["eval", "--checkpoint", "README.md", "--split", "test"], "README.md: not a readable HDF5 file"),
    (["check-verse", "--file", "nope.txt"], "nope.txt: file not found"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    proc = run(*args)
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip() and "Warning" not in l and "warn" not in l]
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_sample_and_eval_from_a_trained_checkpoint(tmp_path):
    out = tmp_path / "run"
    proc = run("train", "--config", "configs/tiny.yaml", "--out", str(out), "--no-progress",
               "--set", "train.max_steps=4", "--set", "train.eval_every=4")
    assert proc.returncode == 0, proc.stderr[-1500:]
    ckpt = str(out / "best.h5")
    proc = run("sample", "--checkpoint", ckpt, "--num", "3", "--form", "wujue", "--tones", "strict", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    import json
    poems = json.loads(proc.stdout)
    assert len(poems) == 3 and all("novelty" in p and len(p["text"]) == 24 for p in poems)
    poem_file = tmp_path / "p.txt"
    poem_file.write_text("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。\n", encoding="utf-8")
    proc = run("eval", "--checkpoint", ckpt, "--text", str(poem_file), "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    result = json.loads(proc.stdout)
    assert list(result) == ["poems", "tokens", "unk_rate", "nll_per_token", "perplexity", "bits_per_char"]
    assert result["tokens"] == 25
    (tmp_path / "empty.txt").write_text("")
    proc = run("eval", "--checkpoint", ckpt, "--text", str(tmp_path / "empty.txt"))
    assert proc.returncode == 2 and "empty" in proc.stderr
    proc = run("sample", "--checkpoint", ckpt, "--temperature", "0")
    assert proc.returncode == 2 and "--temperature must be > 0" in proc.stderr


def test_gradflow_graph_and_check_verse_commands(tmp_path):
    proc = run("gradflow", "--random", "--hidden", "8", "--embedding", "4", "--length", "12", "--batch", "2",
               "--out", str(tmp_path / "gf"))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "untrained lstm" in proc.stdout and (tmp_path / "gf" / "gradflow.png").is_file()
    assert (tmp_path / "gf" / "gradflow.csv").read_text().startswith("cell,distance,grad_h_norm,grad_c_norm")
    proc = run("graph", "--set", "model.hidden=4", "--set", "model.embedding=3")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert "nodes before rewrites" in proc.stdout and "scan layer0" in proc.stdout
    proc = run("check-verse", "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。")
    assert proc.returncode == 0 and "tones pass" in proc.stdout and "rhyme pass" in proc.stdout
