"""`make lint` runs the checks of .pre-commit-config.yaml without pre-commit (not installed,
and it would fetch its hooks from the network): the two must name the same checks, and the
whitespace check must find what pre-commit's end-of-file-fixer and trailing-whitespace fix."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WHITESPACE = "$(PY) tools/check_whitespace.py"
# each pre-commit hook -> the line of the Makefile's lint recipe that does the same check
SAME_CHECK = {"ruff-check": "$(BIN)/ruff check kexp tests tools",
              "end-of-file-fixer": WHITESPACE,
              "trailing-whitespace": WHITESPACE,
              "docs-configuration": "$(PY) -m kexp.config.reference --check"}
HOOK_REPOS = {"ruff-check": "https://github.com/astral-sh/ruff-pre-commit",
              "end-of-file-fixer": "https://github.com/pre-commit/pre-commit-hooks",
              "trailing-whitespace": "https://github.com/pre-commit/pre-commit-hooks",
              "docs-configuration": "local"}


def lint_recipe() -> list[str]:
    """The commands of the Makefile's `lint:` target, as written there."""
    text = (ROOT / "Makefile").read_text()
    (recipe,) = re.findall(r"^lint:.*\n((?:\t.*\n)+)", text, flags=re.MULTILINE)
    return [line.strip() for line in recipe.splitlines()]


def hooks() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    return {hook["id"]: {**hook, "repo": repo["repo"]}
            for repo in config["repos"] for hook in repo["hooks"]}


def test_make_lint_and_pre_commit_name_the_same_checks():
    found = hooks()
    assert {name: hook["repo"] for name, hook in found.items()} == HOOK_REPOS
    assert lint_recipe() == list(dict.fromkeys(SAME_CHECK.values()))
    # the local hook is make's command, run by the active venv's python instead of $(PY)
    docs = found["docs-configuration"]
    assert "$(PY)" + docs["entry"].removeprefix("python") == SAME_CHECK["docs-configuration"]
    assert docs["pass_filenames"] is False  # it checks the whole file, not the commit's files
    # ruff's hook sees the Python files of the folders make lint hands ruff, and no others
    folders = SAME_CHECK["ruff-check"].split()[2:]
    files = re.compile(found["ruff-check"]["files"])
    assert all(files.match(f"{folder}/a.py") for folder in folders)
    assert not files.match("notebooks/a.py") and not files.match("docs/a.py")


def check(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools" / "check_whitespace.py"),
                           *map(str, paths)], capture_output=True, text=True, timeout=60)


def test_the_whitespace_check_finds_what_the_hooks_would_fix(tmp_path):
    cases = {"clean.txt": b"a\nb\n", "crlf.txt": b"a\r\nb\r\n", "empty.txt": b"",
             "picture.png": b"\x89PNG\r\n\x1a\n\0 \n\n",  # binary: left alone
             "trailing.md": b"a \nb\t\nc\n", "unended.py": b"a = 1",
             "blank_end.yaml": b"a: 1\n\n", "only_blank.txt": b"\n\n"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    done = check(*(tmp_path / name for name in cases))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{tmp_path}/trailing.md:1: trailing whitespace",
        f"{tmp_path}/trailing.md:2: trailing whitespace",
        f"{tmp_path}/unended.py: no newline at the end of the file",
        f"{tmp_path}/blank_end.yaml: blank lines at the end of the file",
        f"{tmp_path}/only_blank.txt: blank lines at the end of the file"]
    assert check(*(tmp_path / n for n in ("clean.txt", "crlf.txt", "empty.txt",
                                          "picture.png"))).returncode == 0
