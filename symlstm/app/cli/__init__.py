"""The `symlstm` command: parses arguments, calls the library, prints. Nothing else.

User mistakes (every `errors.UserError`: config, corpus, checkpoint, decoding options, bad
arguments) become one line on stderr and exit code 2; a failed check exits 1. Anything else is a
bug and shows its traceback.

Each command group lives in its own module (`runs.py`: models and runs; `poems.py`: writing and
judging poems): each command's arguments are built by a function just above its `cmd_` function,
the shared ones by `common.shared_args`, and the module's COMMANDS table names them; this module
only builds the parser and runs the chosen command.
"""
import argparse
import sys
from importlib import metadata

from symlstm.errors import UserError, one_line

from . import poems, runs
from .common import add_commands


class Parser(argparse.ArgumentParser):
    """argparse, but a mistake in the arguments is one line (and exit code 2), like every other user
    mistake: argparse's own `error` prints the usage block first."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="symlstm", description="Character-level LSTM poems on PyTensor")
    p.add_argument("--version", action="version", version=f"symlstm {metadata.version('symlstm')}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    add_commands(sub, runs.COMMANDS + poems.COMMANDS)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as err:
        print(f"symlstm {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"symlstm {args.command}: interrupted", file=sys.stderr)
        return 130

