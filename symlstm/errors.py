"""The one base class of the mistakes a user can make, as opposed to bugs.

Every module that checks user input (a config, a corpus file, a checkpoint, decoding options, the
arrays handed to a compiled model) raises a subclass of `UserError` naming the file, key or value.
The CLI prints those as one line with exit code 2; anything else is a bug and keeps its traceback.
The subclasses also derive from ValueError, so callers of the Python API may catch either.
"""


def one_line(message: str) -> str:
    """A message as one printable line: a newline or other control character the user typed (and the
    message quotes) is shown escaped, \\n, not obeyed."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in message)


class UserError(Exception):
    """A mistake in what the user gave: printed as one line by the CLI (exit code 2)."""


class InputError(UserError, ValueError):
    """Arrays or options handed to the Python API that do not fit (shape, dtype, token ids, sizes)."""
