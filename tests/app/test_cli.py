"""User mistakes at the command line: one line on stderr, exit code 2, no traceback."""
import os
import re
import subprocess
import sys

import pytest

from symlstm.backend.onednn import runs as onednn_runs

from conftest import ROOT


def run(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "symlstm", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("args, message", [
    (["train", "--config", "configs/nope.yaml"], "configs/nope.yaml: config file not found"),
    (["train", "--config", "configs/tiny.yaml", "--set", "model.hiden=3"],
     "--set model.hiden=3: unknown key 'model.hiden'; did you mean 'hidden'"),  # the override, not the file
    (["train", "--config", "configs/tiny.yaml", "--set", "model.hidden=wide"], "--set model.hidden=wide: model.hidden: expected int"),
    (["check-verse", "--form", "ci:浣紗溪", "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"],
     "--form 'ci:浣紗溪': did you mean ci:浣溪紗 or ci:浣溪沙"),
    (["couplet", "--checkpoint", "runs/none/best.h5", "--first", ""], "--first: give the 上聯 in characters"),
    (["check-verse", "--form", "foo\nbar", "白日依山盡"], "--form 'foo\\nbar': choose one of"),  # typed newline escaped
    (["gradflow", "--config", "configs/tiny.yaml", "--length", "1", "--out", "OUT"], "the flow needs 2 to 10000 steps"),
    (["serve", "--checkpoint", "runs/none/best.h5", "--port", "BUSY"], "cannot listen there (Address already in use)"),
    (["train", "--config", "configs/tiny.yaml", "--set", "data.path=missing/*.txt"], "glob matches no file"),
    (["sample", "--checkpoint", "runs/none/best.h5"], "best.h5: checkpoint not found; train a model first "
                                                      "(`make train` writes runs/poems/best.h5)"),
    (["sample", "--checkpoint", "tests/fixtures/prose.txt"], "prose.txt: not a readable HDF5 file"),
    (["sample", "--checkpoint", "FOREIGN"], "not a symlstm checkpoint (format 'something-else'"),
    (["plot", "runs/none"], "metrics.csv: no metrics.csv in this run directory"),
    (["train", "--config", "configs/tiny.yaml", "--set", "model.backend=tpu"], "'tpu' is not one of jax, c, numba"),
    (["train", "--config", "configs/tiny.yaml", "--out", "OUT", "--set", "data.path=tests/fixtures/prose.txt",
      "--set", "data.format=text", "--set", "data.mode=stream", "--set", "data.cache=false"],
     "tokens, fewer than data.batch_size × data.seq_length + data.seq_length + 1 = 1089"),
    (["eval", "--checkpoint", "README.md", "--split", "test"], "README.md: not a readable HDF5 file"),
    (["check-verse", "--file", "nope.txt"], "nope.txt: file not found"),
    (["train", "--config", "configs/tiny.yaml", "--out", "OUT", "--set", "train.devices=4"],
     "train.devices 4: this machine has 1 local device(s) (cpu)"),
    (["train", "--config", "configs/tiny.yaml", "--set", "train.devices=-1"], "must be a device count, 0 or 'all'"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    import h5py

    with h5py.File(tmp_path / "foreign.h5", "w") as f:
        f.attrs["format"] = "something-else"
    import socket

    busy = socket.create_server(("127.0.0.1", 0))  # a port another program listens on
    names = {"FOREIGN": str(tmp_path / "foreign.h5"), "OUT": str(tmp_path / "run"), "BUSY": str(busy.getsockname()[1])}
    with busy:
        proc = run(*[names.get(a, a) for a in args])
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
    first = run("sample", "--checkpoint", ckpt, "--num", "2", "--form", "wujue")  # a new seed each run, said
    seed = re.fullmatch(r"seed (\d+) \(--seed \1 writes these poems again\)", first.stderr.strip())
    assert first.returncode == 0 and seed, first.stderr[-800:]
    again = run("sample", "--checkpoint", ckpt, "--num", "2", "--form", "wujue", "--seed", seed[1])
    assert again.stdout == first.stdout and again.stderr == ""
    proc = run("sample", "--checkpoint", ckpt, "--num", "1", "--form", "ci:酹江月", "--tones", "off", "--seed", "1", "--json")
    assert proc.returncode == 0 and proc.stderr.strip() == ("note: --tones off: free verse in the layout of the tune "
                                                            "念奴嬌, no tones or rhyme kept"), proc.stderr[-800:]
    assert len(json.loads(proc.stdout)[0]["text"]) == 100 + 20  # 念奴嬌's 100 characters and 20 marks
    tunes = run("tunes")
    assert tunes.returncode == 0 and "ci:念奴嬌  4，5，4。7，6。" in tunes.stdout and " 酹江月" in tunes.stdout
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
    proc = run("score", "--checkpoint", ckpt, "白日依山盡，黃河入海流。欲窮千里目，更上一層流。", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    row = json.loads(proc.stdout)["poems"][0]
    assert [f["rule"] for f in row["faults"]] == ["重韻"] and len(row["surprisal"]) == 25 and row["perplexity"] > 1
    proc = run("sample", "--checkpoint", ckpt, "--num", "2", "--form", "qijue", "--keywords", "明月,秋", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert all(p["keywords"] == {"明月": True, "秋": True} for p in json.loads(proc.stdout))
    proc = run("sample", "--checkpoint", ckpt, "--template", "白日依山盡,＿＿＿＿＿.欲窮千里目，_____。")  # marks as score reads them
    assert proc.returncode == 0 and [l[:6] + l[12:18] for l in proc.stdout.split()] == ["白日依山盡，欲窮千里目，"] * 5
    proc = run("sample", "--checkpoint", ckpt, "--form", "wujue", "--keywords", "白日依山盡盡")
    assert proc.returncode == 2 and "longer than a line" in proc.stderr
    proc = run("measure", "--checkpoint", ckpt, "--num", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-1500:]
    figures = json.loads(proc.stdout)
    assert [r["form"] for r in figures["strict"]] == ["wujue", "qijue", "wulv", "qilv"]
    assert all(r["score_pass"] == 1.0 for r in figures["strict"]) and figures["fillin"]["locked_kept"] == 1.0
    assert all(r["keyword_hit_rate"] == 1.0 for r in figures["keywords"])
    assert len(figures["tunes"]) == 30 and all(r["format"] == 1.0 and r["score_pass"] == 1.0 for r in figures["tunes"])
    proc = run("sample", "--checkpoint", ckpt, "--temperature", "0")
    assert proc.returncode == 2 and "--temperature must be > 0" in proc.stderr
    proc = run("sample", "--checkpoint", ckpt, "--prime", "白日☃")
    assert proc.returncode == 2 and "characters outside the vocabulary: ☃" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    for args, message in [(["sample", "--seed", "-1"], "argument --seed: must be between 0 and 2**32 - 1, got -1"),
                          (["sample", "--form", "wujue", "--max-length", "10"], "--max-length 10: a wujue is 24"),
                          (["sample", "--form", "wujue", "--prime", "明月", "--acrostic", "春夏秋冬"],
                           "the acrostic starts a line with 春 where the prime has 明"),
                          (["eval", "--split", "test", "--batch-size", "0"], "--batch-size must be between 1 and 4096, got 0"),
                          (["eval", "--samples", "0"], "--samples must be between 1 and 100000, got 0")]:
        proc = run(*args[:1], "--checkpoint", ckpt, *args[1:])
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], (args, proc.stderr[-800:])
    proc = run("novelty", "--checkpoint", ckpt, "--num", "1", "--keywords", " ")  # no keyword: no hit rate (was 1/0)
    assert proc.returncode == 0 and "keyword_hit_rate" not in proc.stdout, proc.stderr[-800:]
    proc = run("novelty", "--checkpoint", ckpt, "--num", "1", "--prime", "\n风")  # a typed newline, escaped
    assert proc.returncode == 2 and proc.stderr.splitlines() == [
        "note: --prime \\n风: simplified characters converted, \\n風 (--no-convert keeps them)",
        "symlstm novelty: error: characters outside the vocabulary: \\n"], proc.stderr[-800:]
    proc = run("sample", "--checkpoint", ckpt, "--num", "2", "--max-length", "10", "--json")  # a free poem obeys it
    assert proc.returncode == 0 and all(len(p["text"]) <= 10 for p in json.loads(proc.stdout))


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
    assert proc.returncode == 0 and "no faults" in proc.stdout and "both 100.0%" in proc.stdout
    broken = "白日依山盡，白河入海流。欲窮千里目，更上一層樓。"
    alias, score = run("check-verse", broken), run("score", broken)
    assert alias.returncode == score.returncode == 0 and alias.stdout == score.stdout
    assert "line 2, character 2: 孤平: 白河入海流 has one 平 besides the rhyme" in score.stdout


def test_gradcheck_json_version_and_help():
    import json

    proc = run("gradcheck", "--json", "--max-entries", "3")
    assert proc.returncode == 0, proc.stderr[-1500:]
    result = json.loads(proc.stdout)
    # 3 cells, 1 and 2 layers; two tied 2-layer LSTMs with every dropout, with and without the projection;
    # through the LSTM layer Op, the 2-layer LSTM and the tied one with the projection; the 2-layer
    # Mogrifier LSTM (W, U, b and 5 rounds' matrices per layer)
    assert result["passed"] is True and len(result["rows"]) == 3 * (6 + 9) + 9 + 8 + 9 + 9 + 19
    assert all(r["passed"] is True and r["max_rel_error"] <= result["tolerance"] for r in result["rows"])
    # and, where oneDNN makes a bf16 LSTM here, the same two through oneDNN (bf16 only); else the reason
    through, why = onednn_runs("lstm", True)
    assert len(result["bf16_rows"]) == 3 * (6 + 9) + 9 + 8 + 9 + 9 + 19 + 18 * through and result["bf16_tolerance"] == 2e-2
    assert result.get("onednn_rows_left_out", "") == why
    assert all(r["passed"] is True and r["max_rel_error"] <= 2e-2 for r in result["bf16_rows"])
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == "symlstm 0.1.0"
    proc = run("sample", "--help")
    text = " ".join(proc.stdout.split())
    assert "--top-k TOP_K sample among the K likeliest characters only (0, the default: off)" in text
    assert "(0, the default: off)" in text.split("--beam BEAM")[1]


def test_gradcheck_prints_each_models_rows_as_they_come_so_a_failure_keeps_them(monkeypatch, capsys):
    """The check takes minutes: a model's rows are printed when it is done, not all at the end."""
    from symlstm.app.cli import main
    from symlstm.tools import gradcheck

    real, calls = gradcheck.gradient_check, []

    def second_breaks(cfg, **kw):
        calls.append(cfg)
        if len(calls) == 2:
            raise RuntimeError("the second model broke")
        return real(cfg, **kw)
    monkeypatch.setattr(gradcheck, "gradient_check", second_breaks)
    with pytest.raises(RuntimeError, match="the second model broke"):
        main(["gradcheck", "--max-entries", "1"])
    rows = [l for l in capsys.readouterr().out.splitlines() if l.startswith("lstm L=1 H=5 ")]
    assert [l.split()[3] for l in rows] == ["embedding", "layer0/W", "layer0/U", "layer0/b", "output/W", "output/b"]


def test_a_bug_is_not_dressed_up_as_a_user_error(monkeypatch, capsys):
    """Only symlstm's own UserErrors become one line and exit 2; a ValueError from deep inside
    (a bug) keeps its traceback."""
    from symlstm.app import cli
    from symlstm.errors import UserError

    def broken(args):
        raise ValueError("shapes (3,4) and (5,6) not aligned")
    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["plot"].set_defaults(func=broken)
    with pytest.raises(ValueError, match="not aligned"):
        cli.main(["plot", "runs/x"])
    parser._subparsers._group_actions[0].choices["plot"].set_defaults(func=lambda a: (_ for _ in ()).throw(UserError("bad")))
    assert cli.main(["plot", "runs/x"]) == 2
    assert capsys.readouterr().err.strip() == "symlstm plot: error: bad"


def test_verdicts_read_right(tmp_path, capsys):
    """The lines score and check-verse print: the reason a text is in no form, ci counted apart from
    regulated shi, a summary over none of them saying so, rows left out said, × on a ci's fault."""
    from symlstm.app.cli import main

    ci = "去年元夜時，花天燈如晝。月上柳梢頭，人約黃昏後。今年元夜時，月與燈依舊。不見去年人，淚濕春衫袖。"
    assert main(["check-verse", ci]) == 0
    out = capsys.readouterr().out
    assert "ci:生查子" in out and "marked   仄平平仄平，平×平平仄。" in out
    assert out.strip().endswith("1 poem, none in a regulated form; 1 ci, no fault in 0.0%")
    assert main(["check-verse", ci.replace("花天燈", "花市月")]) == 0  # 月 (仄) where the tune has 平: a note
    out = capsys.readouterr().out  # the text's tones, as `poem` reads them, not the tune's
    assert "poem     仄平平仄平，平仄仄±仄。" in out and "marked   仄平平仄平，平仄仄平仄。" in out  # ±: 如 fits 平
    assert main(["check-verse", "床前明月光"]) == 0
    out = capsys.readouterr().out
    assert "not a regulated form (4 or 8 lines of 5 or 7 characters) nor the layout of a shipped ci tune" in out
    poems = tmp_path / "poems.txt"
    poems.write_text("\n".join(["白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"] * 3 + [ci]), encoding="utf-8")
    assert main(["check-verse", "--file", str(poems), "--list", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["4 poems: more than --list 2, so no poem is shown; --list 4 shows each, --json gives every row",
                   "4 poems, 3 in a regulated form: tones pass 100.0%, rhyme pass 100.0%, both 100.0%; "
                   "1 ci, no fault in 0.0%"]


def test_the_ways_people_write_a_poem_get_one_verdict(capsys):
    """The issue's eight ways of writing 登鸛雀樓 (and simplified characters), through `symlstm score`:
    the same 五絕 with the same verdict; simplified text said to be converted."""
    import json

    from symlstm.app.cli import main

    ways = ["白日依山盡 黃河入海流 欲窮千里目 更上一層樓", "白日依山盡。 黃河入海流。 欲窮千里目。 更上一層樓。",
            "白日依山盡\n黃河入海流\n欲窮千里目\n更上一層樓", "白日依山盡黃河入海流欲窮千里目更上一層樓",
            "白日依山盡,黃河入海流.欲窮千里目,更上一層樓.", "白日依山盡，黃河入海流。欲窮千里目，更上一層樓",
            "白日依山盡，黃河入海流。欲窮千里目，更上一層樓？", "《登鸛雀樓》白日依山盡，黃河入海流。欲窮千里目，更上一層樓。"]
    verdicts = []
    for text in ways:
        assert main(["score", "--json", text]) == 0
        row = json.loads(capsys.readouterr().out)["poems"][0]
        verdicts.append((row["form"], row["pattern"], row["tones_ok"], row["converted"]))
    assert set(verdicts) == {("wujue", "仄起不入韻", True, False)}
    assert main(["score", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。   (converted from simplified characters")
    assert main(["score", "--json", "却道海棠依舊好，江南春色正芳菲。"]) == 0  # the corpus's own 却: not converted
    row = json.loads(capsys.readouterr().out)["poems"][0]
    assert row["text"].startswith("却道海棠依舊好") and row["converted"] is False
    assert main(["score", "--no-convert", "白日依山尽，黄河入海流。欲穷千里目，更上一层楼。"]) == 0
    out = capsys.readouterr().out  # 黄 is 黃's variant form (the table's supplement); the others are unknown
    assert "no faults, tones and rhyme undecided" in out and "both 0.0%; 1 undecided" in out
    assert "unjudged 尽 穷 层 楼: not in the 平水韻 table or its supplement where a rule reads them" in out
    assert main(["score", "The quick brown fox."]) == 2
    assert capsys.readouterr().err.strip() == "symlstm score: error: line 1 (The): 'T' is not a Chinese character"
