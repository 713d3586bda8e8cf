"""`make data`: fetch the chinese-poetry npm package (pinned version and sha512) and write
one-poem-per-line files. Owns the download and the selection rules; nothing here runs at import.
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

from .errors import UserError
from .forms import LOST_MARKS, form_of

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


def extract(tarball: Path, out_dir: Path) -> dict:
    """Write tang.txt, song.txt, songci.txt and tang_quatrains.txt (one poem per line) into out_dir;
    returns the poem count of each."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        dist = Path(tmp) / "package" / "dist"
        tang = _clean(t for _, t in _poems(sorted(glob.glob(str(dist / "quantangshi/poet.tang.*.json")))))
        song = _clean(t for _, t in _poems(sorted(glob.glob(str(dist / "quantangshi/poet.song.*.json")))))
        ci = _clean(t for _, t in _poems(sorted(glob.glob(str(dist / "songci/ci.song.*.json")))))
        quatrains = [t for t in tang if form_of(t) in ("wujue", "qijue")]
        strains = dist / "strains" / "json"
        if strains.is_dir():
            shutil.copytree(strains, out_dir / "strains", dirs_exist_ok=True)
            tang_ids = {t: i for i, t in _poems(sorted(glob.glob(str(dist / "quantangshi/poet.tang.*.json"))))}
            (out_dir / "tang_ids.json").write_text(json.dumps(tang_ids, ensure_ascii=False), encoding="utf-8")
    for name, poems in (("tang", tang), ("song", song), ("songci", ci), ("tang_quatrains", quatrains)):
        (out_dir / f"{name}.txt").write_text("".join(p + "\n" for p in poems), encoding="utf-8")
        counts[name] = len(poems)
    return counts


def make_data(out_dir: Path, keep_tarball: bool = False) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tarball = fetch_tarball(Path(tmp))
        counts = extract(tarball, out_dir)
        if keep_tarball:
            shutil.copy(tarball, out_dir / tarball.name)
    return counts
