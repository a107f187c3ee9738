"""docs/configuration.md, generated from conf/ so that it cannot drift: `make docs`.

Every top-level config (train, tune, eval, ...) and every option of every group, each key with
its default and the comment written above it in the yaml. tests/test_docs.py fails when the
file in the repository differs from what this renders.

    python -m kexp.config.reference [--check] [PATH]     # default PATH: docs/configuration.md
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from kexp.config import config_dir, group_options, groups

DEFAULT_PATH = Path("docs/configuration.md")
_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][\w.]*):(?P<value>.*)$")
_SKIPPED = ("defaults", "hydra")  # Hydra's composition and its own settings, not kexp keys


@dataclass
class Entry:
    key: str  # dotted, relative to the file's package
    default: str  # as written in the yaml ("" for a mapping whose keys follow)
    comment: str


def parse(text: str) -> tuple[str, list[Entry]]:
    """A yaml file's leading comment and its keys (with defaults and the comments above them).

    A line-based reading on purpose: YAML parsers drop comments, and conf/ keeps to a simple
    style (one key a line, block mappings, flow lists and dicts)."""
    header: list[str] = []
    entries: list[Entry] = []
    comment: list[str] = []
    path: list[tuple[int, str]] = []
    started = skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            if stripped.startswith("# @package"):
                continue
            (comment if started else header).append(stripped.lstrip("#").strip())
            continue
        match = _KEY.match(line)
        if not stripped or not match:  # blank lines, list items, block-scalar text
            if stripped:
                started = True
            comment = comment if stripped else []
            continue
        started = True
        indent = len(match["indent"])
        path = [(i, k) for i, k in path if i < indent]
        key = match["key"]
        if indent == 0:
            skipping = key in _SKIPPED
        if not skipping:
            value = match["value"].split(" #", 1)[0].strip()
            dotted = ".".join([k for _, k in path] + [key])
            entries.append(Entry(dotted, value, " ".join(comment)))
        path.append((indent, key))
        comment = []
    # a mapping's own row only when a comment explains it (its keys follow as rows of their own)
    return " ".join(header), [e for e in entries if e.default != "" or e.comment or
                              not _has_children(e, entries)]


def _has_children(entry: Entry, entries: list[Entry]) -> bool:
    return any(e.key.startswith(entry.key + ".") for e in entries)


def table(entries: list[Entry], prefix: str) -> list[str]:
    if not entries:
        return ["(no keys of its own)", ""]
    rows = ["| key | default | what it is |", "|---|---|---|"]
    for e in entries:
        default = e.default.replace("|", "\\|") or ("..." if _has_children(e, entries) else "{}")
        rows.append(f"| `{prefix}{e.key}` | `{default}` | {e.comment.replace('|', '/')} |")
    return [*rows, ""]


def render(root: Path | None = None) -> str:
    """The whole reference as Markdown."""
    root = root or config_dir()
    lines = ["# Configuration reference", "",
             "Generated from `conf/` by `make docs` (`python -m kexp.config.reference`); do not "
             "edit by hand. Every key can be set on the command line as `key=value`, every "
             "group option as `group=option`; `python -m kexp --cfg job [overrides]` prints "
             "the composed result.", ""]
    for top in sorted(root.glob("*.yaml")):
        header, entries = parse(top.read_text())
        lines += [f"## `{top.stem}.yaml`", "", header, "", *table(entries, "")]
    for group in groups(root):
        options = group_options(group, root)
        lines += [f"## Group `{group}`", "", "Options: " + ", ".join(f"`{o}`" for o in options),
                  ""]
        for option in options:
            header, entries = parse((root / group / f"{option}.yaml").read_text())
            package = "" if "@package _global_" in (root / group / f"{option}.yaml").read_text() \
                else f"{group}."
            lines += [f"### `{group}={option}`", "", header, "", *table(entries, package)]
    return "\n".join(line.rstrip() for line in lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    check = "--check" in args
    paths = [a for a in args if a != "--check"]
    path = Path(paths[0]) if paths else DEFAULT_PATH
    text = render()
    if check:
        if not path.is_file() or path.read_text() != text:
            print(f"{path} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    path.write_text(text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
