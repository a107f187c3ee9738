"""Entry-point plumbing shared by `kexp`, `kexp.eval` (and later `kexp.tune`).

Nothing here imports TensorFlow: `--help` and `--cfg job` must stay fast.
Errors a user can cause become one line on stderr and a non-zero exit; set
KEXP_DEBUG=1 to see the full traceback instead.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError

CONFIG_MODULE = "kexp.conf"
EXIT_USAGE = 2  # bad config or input: the user can fix it
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT

OmegaConf.register_new_resolver("kexp_pid", lambda: str(os.getpid()), use_cache=True, replace=True)


def debug_enabled() -> bool:
    return os.environ.get("KEXP_DEBUG", "") not in ("", "0")


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line and exit: the contract for every error a user can cause."""
    print(f"kexp: error: {message}", file=sys.stderr)
    sys.exit(code)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up notices (oneDNN, CPU features) kept off stderr.

    They are written straight to file descriptor 2 before absl logging is set up, so
    TF_CPP_MIN_LOG_LEVEL cannot silence them; a failed import still shows everything.
    """
    if os.environ.get("TF_USE_LEGACY_KERAS", "") not in ("", "0", "false", "False"):
        # some NVIDIA containers set it; it swaps in Keras 2, which kexp, keras-tuner and
        # mlflow.keras cannot use
        raise KexpError("TF_USE_LEGACY_KERAS is set: kexp needs Keras 3; unset it "
                        "(unset TF_USE_LEGACY_KERAS) and run again")
    if importlib.util.find_spec("tensorflow") is None:
        raise KexpError("TensorFlow is not installed: pip install -e '.[cpu]' (or '.[gpu]' "
                        "for the CUDA build), or `make install`")
    if "tensorflow" in sys.modules or debug_enabled() or \
            os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def config_dir() -> Path:
    """The folder holding train.yaml: conf/ in a checkout, kexp/conf in an installed wheel."""
    import kexp.conf

    return Path(kexp.conf.__file__).parent


def group_options(group: str, root: Path | None = None) -> list[str]:
    folder = (root or config_dir()) / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def groups(root: Path | None = None) -> list[str]:
    root = root or config_dir()
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("*.yaml")))


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


def compose(root: Path, config_name: str, overrides: Sequence[str]):
    """Compose `config_name` from `root` outside of a Hydra app, errors as KexpError lines."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(str(root), version_base="1.3"):
            return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as exc:
        fail(_one_line(exc))


def _check_group_option(override: str, root: Path, extra: Path | None = None) -> None:
    key, sep, value = override.lstrip("+~").partition("=")
    roots = [root] if extra is None else [root, extra]
    if not sep or "." in key or value in ("null", "") or \
            not any(key in groups(r) for r in roots):
        return
    options = sorted({o for r in roots if (r / key).is_dir() for o in group_options(key, r)})
    if value not in options:
        fail(f"unknown {key} '{value}'; valid options: {', '.join(options)}")


def _choices_only(overrides: Sequence[str], root: Path, extra: Path | None = None) -> list[str]:
    """The group choices among `overrides` (and the search path), to compose the defaults a
    value is checked against."""
    group_names = set(groups(root)) | (set(groups(extra)) if extra else set())
    return [o for o in overrides
            if o.lstrip("+~").partition("=")[0] in group_names | {"hydra.searchpath"}]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    if text.startswith("Could not override '"):
        key = text.split("'", 2)[1]
        return f"unknown config key '{key}' (misspelled? `--cfg job` prints every key)"
    return text.splitlines()[0] if text else type(exc).__name__
