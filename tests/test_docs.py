"""The README's and the docs' Python blocks run as written, each alone, as a reader copies one
block at a time, except the tutorial's, which is one program in steps and runs in order (a
checkpoint path `runs/poems/best.h5` swapped for a tiny run's), and the README stays the short
front door it promises."""
import re

import pytest

from conftest import ROOT, tiny_raw

PAGES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
README = (ROOT / "README.md").read_text(encoding="utf-8")


def blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_readme_starts_with_the_two_commands_and_is_short():
    first_block = re.search(r"```(?:sh|bash)?\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert [l for l in first_block if not l.startswith("#")] == ["make train", "make test"]
    assert len(README.splitlines()) <= 250


def test_every_docs_link_points_at_a_file():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists(), f"{page.name}: {target}"


@pytest.fixture(scope="module")
def checkpoint(small_corpus, tmp_path_factory):
    from symlstm import load_config, train

    run = tmp_path_factory.mktemp("docs") / "run"
    train(load_config(raw=tiny_raw(max_steps=3, eval_every=3)), run, small_corpus, log=lambda *_: None,
          progress=False)
    return run / "best.h5"


TUTORIAL = ROOT / "docs" / "tutorial.md"


@pytest.mark.slow
@pytest.mark.parametrize("page, k", [(p, k) for p in PAGES if p != TUTORIAL for k in range(len(blocks(p)))],
                         ids=lambda x: x.name if hasattr(x, "name") else f"block{x + 1}")
def test_each_python_block_runs_alone(page, k, checkpoint, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    code = blocks(page)[k].replace("runs/poems/best.h5", str(checkpoint))
    exec(compile(code, f"{page.name}, Python block {k + 1}", "exec"), {})
    if "[('孤平', 2, 2), ('重韻', 4, 5)]" in code:
        assert "[('孤平', 2, 2), ('重韻', 4, 5)]" in capsys.readouterr().out  # the score example prints what it says


@pytest.mark.slow
def test_the_tutorials_blocks_run_in_order(monkeypatch):
    monkeypatch.chdir(ROOT)  # it reads the shipped quatrains from data/
    namespace = {}
    for k, code in enumerate(blocks(TUTORIAL)):
        exec(compile(code, f"tutorial.md, Python block {k + 1}", "exec"), namespace)
