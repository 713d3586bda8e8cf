"""The README's Python snippets run as written (the checkpoint path swapped for a tiny run's)."""
import re

from conftest import ROOT, tiny_raw

README = (ROOT / "README.md").read_text(encoding="utf-8")
SNIPPETS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_starts_with_the_two_commands():
    first_block = re.search(r"```(?:sh|bash)?\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert [l for l in first_block if not l.startswith("#")] == ["make train", "make test"]


def test_model_snippet_runs():
    exec(compile(SNIPPETS[0], "README snippet 1", "exec"), {})


def test_sampling_and_scoring_snippets_run(small_corpus, tmp_path, monkeypatch, capsys):
    from symlstm import load_config, train

    train(load_config(raw=tiny_raw(max_steps=3, eval_every=3)), tmp_path / "run", small_corpus,
          log=lambda *_: None, progress=False)
    monkeypatch.chdir(small_corpus)
    code = SNIPPETS[1].replace("runs/poems/best.h5", str(tmp_path / "run" / "best.h5"))
    assert code != SNIPPETS[1]
    namespace = {}
    exec(compile(code, "README snippet 2", "exec"), namespace)
    exec(compile(SNIPPETS[2], "README snippet 3", "exec"), namespace)
    assert "[('孤平', 2, 2), ('重韻', 4, 5)]" in capsys.readouterr().out
