"""Famous poems judged as tradition judges them, through the path users take: `symlstm score
--json` (no form named) and the page's /api/score. The labels and their sources are in famous.py."""
import json

import pytest
from famous import FAMOUS

from conftest import QUATRAINS


def expect(name, row):
    text, form, pattern, faults, licences, _ = FAMOUS[name]
    assert row["form"] == form, (name, row["form"], row["faults"])
    if pattern is not None:
        assert row["pattern"] == pattern, (name, row["pattern"])
    rules = {f["rule"] for f in row["faults"]}
    if faults:
        assert set(faults) <= rules and not (row["tones_ok"] and row["rhyme_ok"]), (name, row["faults"])
    else:  # regulated, and the licences it takes named
        assert row["faults"] == [] and row["tones_ok"] and row["rhyme_ok"], (name, row["faults"])
        assert sorted(n.split(":")[0] for n in row["notes"] if not n.startswith("一三五")) == sorted(licences), \
            (name, row["notes"])


def test_the_suite_is_the_size_the_issue_asks_and_covers_each_kind():
    assert len(FAMOUS) >= 30
    kinds = {e[1] for e in FAMOUS.values()} | {r for e in FAMOUS.values() for r in e[3] + e[4]}
    assert {"wujue", "qijue", "wulv", "qilv", "ci:生查子", "ci:玉樓春", "特拗", "孤雁出群", "失粘", "三平尾",
            "出韻"} <= kinds
    assert {e[2] for e in FAMOUS.values() if e[1] in ("wulv", "qilv")} >= {"仄起入韻", "仄起不入韻", "平起入韻", "平起不入韻"}


@pytest.mark.parametrize("name", FAMOUS)
def test_the_cli_judges_each_famous_poem_as_tradition_does(name, capsys):
    from symlstm.app.cli import main

    assert main(["score", "--json", FAMOUS[name][0]]) == 0
    expect(name, json.loads(capsys.readouterr().out)["poems"][0])


@pytest.fixture(scope="module")
def client():
    from starlette.testclient import TestClient

    from symlstm import ModelConfig, Vocab, compile_model, init_params
    from symlstm.app.serve import Engine, create_app

    vocab = Vocab.build(QUATRAINS[:400] + [e[0] for e in FAMOUS.values()])
    cfg = ModelConfig(embedding=8, hidden=16)
    with TestClient(create_app(Engine(compile_model(init_params(len(vocab), cfg, 0), cfg), vocab, "tiny"))) as c:
        yield c


@pytest.mark.parametrize("name", FAMOUS)
def test_the_page_judges_each_famous_poem_as_tradition_does(name, client):
    resp = client.post("/api/score", json={"text": FAMOUS[name][0]})
    assert resp.status_code == 200, resp.text
    expect(name, resp.json()["poem"])


def test_a_named_form_is_judged_as_named_or_refused(capsys):
    from symlstm.app.cli import main

    spring = FAMOUS["春望"][0]
    assert main(["check-verse", "--json", "--form", "wujue", spring]) == 0
    row = json.loads(capsys.readouterr().out)["poems"][0]
    assert row["form"] is None and "not the layout of a 五絕" in row["rhyme"]
    assert main(["check-verse", "--json", "--form", "ci:生查子", spring]) == 0  # judged as asked: a 平-rhymed 生查子
    row = json.loads(capsys.readouterr().out)["poems"][0]
    assert row["form"] == "ci:生查子" and any(f["rule"] == "出韻" for f in row["faults"])
    assert main(["check-verse", "--form", "foo", spring]) == 2
    assert capsys.readouterr().err.strip().startswith("symlstm check-verse: error: --form 'foo': choose one of wujue, "
                                                      "qijue, wulv, qilv or ci:TUNE with a shipped tune")
    assert main(["check-verse", "--form", "ci:菩薩蠻", FAMOUS["生查子·元夕"][0]]) == 0
    assert "not the layout of 菩薩蠻" in capsys.readouterr().out
