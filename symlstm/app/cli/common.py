"""What every command shares: the arguments several commands take (spelled once), the working
directory, warnings on stderr, printing a result, progress on long work."""
import argparse
import json
import sys
from pathlib import Path

from symlstm.backend.runtime import BACKENDS
from symlstm.errors import one_line

SPLITS = ["train", "valid", "test"]


def shared_args(p, checkpoint: str | bool = False, backend: bool = False, seed: bool = False,
                json: bool = False, overrides: bool = False):
    """Add the arguments many commands share: `checkpoint` True for a required --checkpoint, or the
    help of an optional one; --backend; --seed (0, or with seed="draw" none: the command draws one and
    says which); --json; --set SECTION.KEY=VALUE (repeatable)."""
    if checkpoint is True:
        p.add_argument("--checkpoint", required=True,
                       help="a checkpoint written by `symlstm train` (runs/NAME/best.h5)")
    elif checkpoint:
        p.add_argument("--checkpoint", help=checkpoint)
    if backend:
        p.add_argument("--backend", choices=list(BACKENDS), help="run on this backend instead of the checkpoint's")
    if seed == "draw":
        p.add_argument("--seed", type=seed_value, default=None,
                       help="0 to 2**32 - 1 (default: a new one each run, printed on stderr, so that --seed repeats a draw)")
    elif seed:
        p.add_argument("--seed", type=seed_value, default=0, help="0 to 2**32 - 1")
    if overrides:
        p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a config key")
    if json:
        p.add_argument("--json", action="store_true", help="print JSON")


def seed_value(text: str) -> int:
    """A --seed as NumPy's generators take it: an integer from 0 to 2**32 - 1."""
    value = int(text)
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2**32 - 1, got {value}")
    return value


def drawn_seed(args) -> int:
    """--seed, or where it was left out a new one (0 where nothing is drawn: --argmax, --beam);
    `say_seed` tells it once the poems are written, so that the draw can be repeated."""
    if args.seed is not None or getattr(args, "argmax", False) or getattr(args, "beam", 0):
        return args.seed or 0
    import secrets

    args.drawn = secrets.randbelow(2 ** 32)
    return args.drawn


def say_seed(args):
    if getattr(args, "drawn", None) is not None:
        warn(f"seed {args.drawn} (--seed {args.drawn} writes these poems again)")


def add_commands(sub, commands):
    """One subparser per (name, help, arguments, command) row, in the table's order."""
    for name, help_, arguments, command in commands:
        p = sub.add_parser(name, help=help_)
        arguments(p)
        p.set_defaults(func=command)


def project_root() -> Path:
    return Path.cwd()


def warn(message: str):
    print(one_line(message), file=sys.stderr)


class Progress:
    """Long work seen as it goes (measure, judge-corpus, gradcheck, bench, compare, data): a tqdm bar
    on stderr where stderr is a terminal, as training has (nothing elsewhere), shown at once with what
    is being done; `tick(n, stage)` is the callback the library's long functions take; `done(line)`
    prints a finished part's result above the bar as soon as it is known, so that whatever stops the
    command keeps what was finished."""

    def __init__(self, desc: str, unit: str = "it", total: int | None = None):
        from tqdm import tqdm

        self.write = tqdm.write
        self.bar = tqdm(total=total, unit=unit, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True,
                        disable=not sys.stderr.isatty())
        self.bar.refresh()
        self.stage = desc

    def tick(self, n: int = 1, stage: str | None = None):
        """n more done; a new stage is shown at once."""
        if stage is not None and stage != self.stage:
            self.stage = stage
            self.bar.set_description_str(stage, refresh=True)
        self.bar.update(n)

    def done(self, line: str, file=None):
        self.write(line, file=file or sys.stdout)
        (file or sys.stdout).flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.bar.close()


def print_result(d: dict, as_json: bool, width: int):
    if as_json:
        print(json.dumps(d))
        return
    for k, v in d.items():
        print(f"{k:>{width}}: {v:.6g}" if isinstance(v, float) else f"{k:>{width}}: {v}")
