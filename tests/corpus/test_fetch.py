"""`make data` (`corpus.fetch`): the npm package's checks, the ci's conversion to traditional characters, couplets."""
import pytest


def test_make_data_checks_npm_and_the_pinned_integrity(monkeypatch, tmp_path):
    from symlstm.corpus import fetch

    monkeypatch.setattr(fetch.shutil, "which", lambda name: None)
    with pytest.raises(fetch.FetchError, match="npm: not found"):
        fetch.fetch_tarball(tmp_path)
    fake = tmp_path / "npm"  # an npm that "downloads" a tampered tarball
    fake.write_text("#!/bin/sh\necho tampered > chinese-poetry-2.0.1.tgz\n")
    fake.chmod(0o755)
    monkeypatch.setattr(fetch.shutil, "which", lambda name: str(fake))
    with pytest.raises(fetch.FetchError, match="does not match the pinned sha512-KtYARvV7"):
        fetch.fetch_tarball(tmp_path)
    fake.write_text("#!/bin/sh\necho 'npm ERR! network request failed' >&2\nexit 1\n")
    with pytest.raises(fetch.FetchError, match="is the npm registry reachable.*network request failed"):
        fetch.fetch_tarball(tmp_path)


def test_make_data_writes_the_ci_in_traditional_characters_with_their_tunes(tmp_path):
    """A package of two Tang poems and three simplified ci, as `npm pack` would give it."""
    import io
    import json
    import tarfile

    from symlstm.corpus.fetch import extract

    ci = [{"author": "苏轼", "rhythmic": "念奴娇", "paragraphs": ["大江东去，浪淘尽，千古风流人物。"]},
          {"author": "李清照", "rhythmic": "声声慢", "paragraphs": ["寻寻觅觅，冷冷清清。"]},
          {"author": "无名", "rhythmic": "浣溪沙", "paragraphs": ["烟草萋萋云万里，", "梦回人在画楼中。"]}]
    tang = [{"id": "t1", "paragraphs": ["白日依山盡，黃河入海流。", "欲窮千里目，更上一層樓。"]}]
    tarball = tmp_path / "p.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, data in (("package/dist/songci/ci.song.0.json", ci),
                           ("package/dist/quantangshi/poet.tang.0.json", tang)):
            raw = json.dumps(data, ensure_ascii=False).encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    counts, report = extract(tarball, tmp_path / "full")
    assert counts == {"tang": 1, "song": 0, "songci": 3, "tang_quatrains": 1, "couplets": 0}
    entries = json.loads((tmp_path / "full" / "songci.json").read_text(encoding="utf-8"))
    assert [(e["rhythmic"], e["author"]) for e in entries] == [("念奴嬌", "蘇軾"), ("聲聲慢", "李清照"), ("浣溪沙", "無名")]
    assert entries[0]["paragraphs"] == ["大江東去，浪淘盡，千古風流人物。"]
    assert entries[1]["paragraphs"] == ["尋尋覓覓，冷冷清清。"]
    assert entries[2]["paragraphs"] == ["煙草萋萋雲萬里，", "夢迴人在畫樓中。"]  # never 菸草; 夢迴 as traditional texts write it
    lines = (tmp_path / "full" / "songci.txt").read_text(encoding="utf-8").splitlines()
    assert lines[2] == "煙草萋萋雲萬里，夢迴人在畫樓中。"
    assert report["chosen"]["云"] == {"雲": 1} and report["chosen"]["尽"] == {"盡": 1}
    assert report["unaligned_poems"] == 0 and report["one_to_many_positions"] >= 4


def test_the_parallel_couplets_of_a_lvshi():
    from symlstm.corpus.fetch import parallel_couplets

    chun_wang = "國破山河在，城春草木深。感時花濺淚，恨別鳥驚心。烽火連三月，家書抵萬金。白頭搔更短，渾欲不勝簪。"
    assert parallel_couplets(chun_wang) == ["感時花濺淚，恨別鳥驚心。", "烽火連三月，家書抵萬金。"]
    assert parallel_couplets("白日依山盡，黃河入海流。欲窮千里目，更上一層樓。") == []
