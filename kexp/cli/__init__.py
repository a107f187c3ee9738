"""The command-line entry points (`python -m kexp`, `kexp.eval`, `kexp.tune`, `kexp.sync`,
`kexp.report`: one module each in this package) and their shared plumbing. Library code
never imports this package.

Nothing here imports TensorFlow: `--help` and `--cfg job` must stay fast.
Errors a user can cause become one line on stderr and a non-zero exit; set
KEXP_DEBUG=1 to see the full traceback instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig

from kexp.config import compose as _compose
from kexp.config import config_dir, group_options, groups
from kexp.environment import debug_enabled, import_tensorflow_quietly
from kexp.errors import KexpError

EXIT_USAGE = 2  # bad config or input: the user can fix it
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "check_composed", "compose", "config_dir", "fail",
           "group_options", "groups", "import_tensorflow_quietly", "precheck", "run_guarded"]


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line and exit: the contract for every error a user can cause."""
    print(f"kexp: error: {message}", file=sys.stderr)
    sys.exit(code)


def run_guarded(job: Callable[[], object]) -> object:
    """Run `job`, turning a KexpError into one line and its exit code."""
    try:
        return job()
    except KexpError as exc:
        if debug_enabled():
            raise
        fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted; the run directory keeps what was written so far", EXIT_INTERRUPTED)


def precheck(argv: Sequence[str], config_name: str) -> None:
    """Compose the config the way Hydra is about to, and explain a bad override in one line.

    Hydra's own messages for these mistakes span many lines and end with a hint about
    HYDRA_FULL_ERROR; a user who typed `model=vgx` deserves one line naming the options.
    Multirun sweeps and help requests are left to Hydra.
    """
    from hydra._internal.utils import get_args_parser

    args, _ = get_args_parser().parse_known_args(list(argv))
    if args.help or args.hydra_help or args.multirun or args.info or args.shell_completion:
        return
    root = Path(args.config_path or config_dir()).absolute()
    if args.config_path and not root.is_dir():
        fail(f"--config-path: '{args.config_path}' is not a directory")
    extra = Path(args.config_dir).absolute() if args.config_dir else None
    if extra is not None and not extra.is_dir():
        fail(f"--config-dir: '{args.config_dir}' is not a directory")
    name = args.config_name or config_name
    overrides = [o for o in args.overrides if not o.lstrip("+~").startswith("hydra")]
    if extra is not None:  # Hydra adds --config-dir to the search path, beside kexp's own conf
        overrides.append(f"hydra.searchpath=[file://{extra}]")
    for override in overrides:
        _check_group_option(override, root, extra)
    cfg = compose(root, name, overrides)
    check_composed(cfg, compose(root, name, _choices_only(overrides, root, extra)),
                   complete=not args.cfg)


def check_composed(cfg: DictConfig, defaults: DictConfig, complete: bool = True) -> None:
    """The checks of a composed config before TensorFlow loads, each failure one line (exit 2).

    `defaults` is the same config composed from the group choices alone: every value must
    have the type of its default there (`config.validate_types`); then the rules
    (`config.validate`) and, when `complete`, no `???` left (`config.check_complete`)."""
    from kexp.config import check_complete, validate, validate_types

    run_guarded(lambda: validate_types(cfg, defaults))
    run_guarded(lambda: validate(cfg))
    if complete:
        run_guarded(lambda: check_complete(cfg))


def compose(root: Path, config_name: str, overrides: Sequence[str]) -> DictConfig:
    """`kexp.config.compose`, a bad override ending the command with one line."""
    return run_guarded(lambda: _compose(root, config_name, overrides))


def _check_group_option(override: str, root: Path, extra: Path | None = None) -> None:
    key, sep, value = override.lstrip("+~").partition("=")
    roots = [root] if extra is None else [root, extra]
    if not sep or "." in key or value in ("null", "") or \
            not any(key in groups(r) for r in roots):
        return
    options = sorted({o for r in roots if (r / key).is_dir() for o in group_options(key, r)})
    # several options of one group merged, e.g. logger=[mlflow,tensorboard]
    chosen = value[1:-1].split(",") if value.startswith("[") and value.endswith("]") else [value]
    for one in (c.strip() for c in chosen):
        if one not in options:
            fail(f"unknown {key} '{one}'; valid options: {', '.join(options)}")


def _choices_only(overrides: Sequence[str], root: Path, extra: Path | None = None) -> list[str]:
    """The group choices among `overrides` (and the search path), to compose the defaults a
    value is checked against."""
    group_names = set(groups(root)) | (set(groups(extra)) if extra else set())
    return [o for o in overrides
            if o.lstrip("+~").partition("=")[0] in group_names | {"hydra.searchpath"}]
