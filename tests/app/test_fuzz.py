"""Fuzzing the command line and the JSON API with Hypothesis: generated command lines for the
subcommands (valid and invalid values: empty, negative, zero, huge, NaN, CJK, simplified, ASCII and
emoji text, wrong forms and tunes, conflicting options) and generated JSON bodies for every API
route. Whatever comes in, the CLI exits 0, or 2 with one error line on stderr (notes may precede
it), and never shows a traceback; the API answers 200, or 400 with one line, never 500, and keeps
serving; nothing is written outside the run's folder.

CI runs SYMLSTM_FUZZ_EXAMPLES examples per property (default 40, derandomised); the long campaign
(docs/scoring.md, "Fuzzing"):

    make fuzz            (SYMLSTM_FUZZ_EXAMPLES=10000 .venv/bin/python -m pytest -q tests/app/test_fuzz.py)

Not fuzzed: `bench` and `gradcheck` (minutes per valid run), `data` (the network), `serve` past its
port check (a valid serve blocks), `measure` beyond two samples; the backends other than JAX (a C or
Numba compile takes a minute).
"""
import contextlib
import io
import json
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import QUATRAINS, ROOT

EXAMPLES = int(os.environ.get("SYMLSTM_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 200, database=None,
                suppress_health_check=list(HealthCheck))

TEXTS = ["", " ", "白日依山盡", "白日依山尽", "春夏秋冬", "风花雪月", "明月", "Hello", "🌙", "月,秋風", "，", "＿",
         "白日依山盡，黃河入海流。欲窮千里目，更上一層樓。", "白日依山尽 黄河入海流 欲穷千里目 更上一层楼",
         "白日依山盡，＿＿＿＿＿。欲窮千里目，＿＿＿＿＿。", "春風又綠江南岸", "黃河入海流", "山" * 401]
ALPHABET = st.sampled_from(list("白日依山盡黃河入海流欲窮千里目更上一層樓春夏秋冬风花雪月，。？！ \n,.a1_＿🌙\t"))
TEXT = st.one_of(st.sampled_from(TEXTS), st.text(ALPHABET, max_size=40))
INT = st.one_of(st.integers(-3, 5), st.sampled_from(["65", "1001", "4097", str(10 ** 9), str(-10 ** 9), "x", "1.5", ""]))
FLOAT = st.sampled_from(["0", "-1", "nan", "inf", "-inf", "1e309", "0.8", "1", "3.5", "x", ""])
FORM = st.sampled_from(["wujue", "qijue", "wulv", "qilv", "ci:浣溪沙", "ci:生查子", "ci:浣紗溪", "foo", ""])
TONES = st.sampled_from(["off", "strict", "loose", "rhyme", "very", ""])
BACKEND = st.sampled_from(["jax", "tpu"])
CHECKPOINT = st.sampled_from(["runs/tiny/best.h5"] * 4 + ["runs/none.h5", "poems.txt", ""])
CONFIG = st.sampled_from(["configs/tiny.yaml"] * 3 + ["configs/nope.yaml", "poems.txt"])
def _schema_keys() -> list[str]:
    from dataclasses import fields

    from symlstm.config import SECTIONS

    return [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)]


# every key of the config, with values of every kind, and the mistakes people make
OVERRIDE = st.one_of(
    st.tuples(st.sampled_from(_schema_keys()),
              st.sampled_from(["0", "-1", "1", "2", "3", "0.5", "1e9", "nan", "-inf", "x", "true", "", "[1]", "{}",
                               "lstm", "gru", "adam", "cosine", "bf16", "poem", "stream", "json", "wujue"]))
    .map(lambda kv: f"{kv[0]}={kv[1]}"),
    st.sampled_from(["model.hiden=8", "model=3", "nonsense", "=", "train.lr=1", "model.hidden.x=1"]))


def option(flag, values=None):
    """[flag] or [flag, value] (a value drawn from `values`), as a command line has them."""
    return st.just([flag]) if values is None else values.map(lambda v: [flag, str(v)])


def command(name, required, optional):
    """[name, *required..., *some of optional in any order]."""
    picked = st.lists(st.sampled_from(range(len(optional))), unique=True, max_size=min(6, len(optional))) \
        if optional else st.just([])

    @st.composite
    def build(draw):
        argv = [name] + sum((draw(s) for s in required), [])
        for k in draw(picked):
            argv += draw(optional[k])
        return argv
    return build()


SAMPLING = [option("--num", INT), option("--max-length", INT), option("--seed", INT), option("--prime", TEXT),
            option("--argmax"), option("--temperature", FLOAT), option("--top-k", INT), option("--top-p", FLOAT),
            option("--beam", INT), option("--acrostic", TEXT), option("--form", FORM), option("--tones", TONES),
            option("--pattern", st.sampled_from(["zeqi", "pingqi-rhyme", "bad"])), option("--rhyme", TEXT),
            option("--keywords", TEXT), option("--template", TEXT), option("--candidates", INT), option("--json"),
            option("--no-convert"), option("--backend", BACKEND), option("--bogus")]
SCORING = [option("--file", st.just("poems.txt")), option("--split", st.sampled_from(["train", "test", "bad"])),
           option("--config", CONFIG), option("--list", INT), option("--form", FORM), option("--no-convert"),
           option("--json")]
CLI = st.one_of(
    command("sample", [option("--checkpoint", CHECKPOINT)], SAMPLING + [option("--novelty")]),
    command("novelty", [option("--checkpoint", CHECKPOINT), option("--num", st.sampled_from(["1", "2", "0"]))],
            SAMPLING[1:]),
    command("couplet", [option("--checkpoint", CHECKPOINT)],
            [option("--first", TEXT), option("--num", INT), option("--temperature", FLOAT), option("--top-k", INT),
             option("--beam", INT), option("--seed", INT), option("--json"), option("--no-convert"),
             option("--backend", BACKEND)]),
    command("score", [TEXT.map(lambda t: [t])], SCORING + [option("--checkpoint", CHECKPOINT)]),
    command("check-verse", [TEXT.map(lambda t: [t])], SCORING),
    command("eval", [option("--checkpoint", CHECKPOINT)],
            [option("--text", st.just("poems.txt")), option("--split", st.sampled_from(["test", "valid", "x"])),
             option("--couplets", st.just("couplets.txt")), option("--batch-size", INT), option("--json")]),
    command("compare", [st.just(["runs/tiny/best.h5"])],
            [option("--text", st.just("poems.txt")), option("--split", st.just("test")), option("--config", CONFIG),
             option("--couplets"), option("--limit", INT), option("--batch-size", INT), option("--json")]),
    command("plot", [st.sampled_from([["runs/tiny"], ["runs/none"], [""]])], []),
    command("graph", [], [option("--config", CONFIG), option("--set", OVERRIDE)]),
    command("gradflow", [option("--random"), option("--hidden", st.sampled_from(["4", "0", "-2", "x"])),
                         option("--embedding", st.just("3")), option("--out", st.just("runs/gf"))],
            [option("--length", INT), option("--batch", INT), option("--cells", st.sampled_from(["rnn,lstm", "gru",
                                                                                                  "bogus", ""])),
             option("--seed", INT)]),
    command("train", [option("--config", CONFIG), option("--set", st.just("train.max_steps=1")),
                      option("--set", OVERRIDE), option("--no-progress")],
            [option("--out", st.sampled_from(["runs/t", "runs/tiny", ""])), option("--overwrite"),
             option("--resume", st.sampled_from(["runs/none", "runs/tiny"]))]),
    command("measure", [option("--checkpoint", CHECKPOINT), option("--num", st.sampled_from(["1", "0", "x"])),
                        st.sampled_from([["tunes"], ["strict"], ["keywords"], ["bogus"]])],
            [option("--seed", INT), option("--json")]),
    command("lexicon", [option("--full", st.sampled_from(["data/full", "nope"]))], [option("--config", CONFIG)]),
    command("judge-corpus", [option("--full", st.sampled_from(["data/full", "nope", "poems.txt"]))],
            [option("--limit", INT)]),
    # a serve that can listen would serve for ever: only ports it cannot take, on this machine's address
    command("serve", [option("--checkpoint", CHECKPOINT), option("--host", st.just("127.0.0.1")),
                      option("--port", st.sampled_from(["BUSY", "70000", "-1", "x"]))], []),
)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project folder (configs, a small corpus, a tiny trained checkpoint, poem files) to run every
    command in; load_model cached, so that the fuzzer is not bound by compiling the same model."""
    import symlstm.run.checkpoint as checkpoint
    from symlstm import load_config, train

    root = tmp_path_factory.mktemp("fuzz")
    (root / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "tiny.yaml", root / "configs" / "tiny.yaml")
    (root / "data").mkdir()
    (root / "data" / "tang_quatrains.txt").write_text("\n".join(QUATRAINS[:400]) + "\n", encoding="utf-8")
    (root / "poems.txt").write_text("\n".join(QUATRAINS[:3] + ["白日依山尽 黄河入海流", "Hello"]) + "\n",
                                    encoding="utf-8")
    (root / "couplets.txt").write_text("白日依山盡，黃河入海流。\n", encoding="utf-8")
    cfg = load_config(root / "configs" / "tiny.yaml", ["train.max_steps=2", "train.eval_every=2"])
    train(cfg, root / "runs" / "tiny", root, log=lambda *_: None, progress=False)
    real, cache = checkpoint.load_model, {}

    def cached(path, backend=None):
        key = (str(path), backend)
        if key not in cache:
            cache[key] = real(path, backend)
        return cache[key]

    checkpoint.load_model = cached
    BEFORE.update(untracked=untracked())
    cwd = os.getcwd()
    os.chdir(root)
    yield root
    os.chdir(cwd)
    checkpoint.load_model = real


BEFORE = {}  # the repository's untracked files before the fuzzing


def run_cli(argv) -> tuple[int, str, str]:
    from symlstm.app.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 0 if exit_.code is None else 2
    return code, out.getvalue(), err.getvalue()


def untracked() -> set:
    return set(subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                              capture_output=True, text=True).stdout.splitlines())


@pytest.mark.slow
@FUZZ
@given(argv=CLI)
def test_every_command_line_exits_0_or_2_with_one_line(project, argv):
    import socket

    busy = socket.create_server(("127.0.0.1", 0))
    with busy:
        argv = [str(busy.getsockname()[1]) if a == "BUSY" else a for a in argv]
        code, _, err = run_cli(argv)  # an exception that is not a user error fails the test with the argv
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("note:")]
    assert code in (0, 2), (argv, code, err[-800:])
    assert "Traceback" not in err, (argv, err[-800:])
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("symlstm"), (argv, err[-800:])
    assert untracked() == BEFORE["untracked"], argv  # nothing written into the repository


@pytest.fixture(scope="module")
def client(project):
    from starlette.testclient import TestClient

    from symlstm.app.serve import Engine, create_app
    from symlstm.run.checkpoint import load_model

    compiled, vocab, _ = load_model(project / "runs" / "tiny" / "best.h5")
    with TestClient(create_app(Engine(compiled, vocab, "tiny")), raise_server_exceptions=False) as c:
        yield c


LEAF = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 40, 2 ** 40), st.floats(allow_nan=False), TEXT,
                 st.sampled_from([1, 2, 3, 8, 9, 0, -1, 0.8, 1e308, "wujue", "ci:浣溪沙", "strict", "loose"]))
JSON = st.recursive(LEAF, lambda kids: st.one_of(st.lists(kids, max_size=4),
                                                 st.dictionaries(st.text(max_size=5), kids, max_size=4)), max_leaves=12)
KEYS = st.sampled_from(["form", "tones", "temperature", "num", "acrostic", "keywords", "template", "candidates", "seed",
                        "couplet", "text", "txt", "path", ""])
BODY = st.one_of(st.dictionaries(KEYS, JSON, max_size=6).map(json.dumps), JSON.map(json.dumps),
                 st.binary(max_size=64), st.just("x" * 9000), st.just('{"text": "' + "山" * 3000 + '"}'))


@pytest.mark.slow
@FUZZ
@given(path=st.sampled_from(["/api/sample", "/api/score", "/api/info", "/", "/app.js", "/api/nope"]), body=BODY)
def test_every_request_gets_200_or_one_line_400_and_the_server_keeps_serving(client, path, body):
    resp = client.post(path, content=body, headers={"Content-Type": "application/json"}) if path.startswith("/api/s") \
        else client.get(path)
    assert resp.status_code in (200, 400, 404, 405), (path, body, resp.status_code, resp.text[-500:])
    if resp.status_code == 400:
        error = resp.json()["error"]
        assert error and "\n" not in error, (path, body, error)
    assert client.get("/api/info").status_code == 200
