"""What every command shares: the working directory, warnings on stderr, printing a result."""
import json
import sys
from pathlib import Path


def project_root() -> Path:
    return Path.cwd()


def warn(message: str):
    print(message, file=sys.stderr)


def print_result(d: dict, as_json: bool, width: int):
    if as_json:
        print(json.dumps(d))
        return
    for k, v in d.items():
        print(f"{k:>{width}}: {v:.6g}" if isinstance(v, float) else f"{k:>{width}}: {v}")
