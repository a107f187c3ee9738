"""Trailing whitespace and end-of-file newlines in the checkout's text files: what pre-commit's
trailing-whitespace and end-of-file-fixer hooks fix, checked without pre-commit (`make lint`).

    python tools/check_whitespace.py [PATH ...]   # default: the files git tracks or would add

Exit status 1 and one line per problem when any file has one. Standard library only, so it
runs before kexp or its dependencies are installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SNIFF_BYTES = 8000  # a NUL among the first bytes: binary (a PNG), left alone as pre-commit does


def checkout_files() -> list[Path]:
    """The files `git add .` would take: tracked, or untracked and not ignored."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=True).stdout
    return [Path(name) for name in listed.decode().split("\0") if name]


def problems(path: Path) -> list[str]:
    """What end-of-file-fixer and trailing-whitespace would change in `path`, one line each."""
    data = path.read_bytes()
    if not data or b"\0" in data[:SNIFF_BYTES]:
        return []
    found = [f"{path}:{number}: trailing whitespace"
             for number, line in enumerate(data.split(b"\n"), start=1)
             if line.rstrip(b"\r") != line.rstrip(b"\r").rstrip()]
    if not data.endswith(b"\n"):
        found.append(f"{path}: no newline at the end of the file")
    elif data.rstrip(b"\r\n") == b"" or data.endswith((b"\n\n", b"\n\r\n")):
        found.append(f"{path}: blank lines at the end of the file")
    return found


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in args] or checkout_files()
    found = [line for path in paths if path.is_file() for line in problems(path)]
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
