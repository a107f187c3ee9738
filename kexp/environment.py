"""What kexp needs of the process it runs in: TensorFlow imported without its start-up noise,
and whether KEXP_DEBUG asks for full tracebacks. No TensorFlow at import."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator

from kexp.errors import KexpError


def debug_enabled() -> bool:
    """KEXP_DEBUG=1: show tracebacks instead of one-line errors."""
    return os.environ.get("KEXP_DEBUG", "") not in ("", "0")


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
    with native_stderr_held(replay_on_error=True):
        import keras  # noqa: F401
        import tensorflow  # noqa: F401


@contextlib.contextmanager
def native_stderr_held(replay_on_error: bool) -> Iterator[None]:
    """File descriptor 2 into a scratch file while inside: what TensorFlow's C++ writes there
    (no Python-level redirect reaches it) is dropped, or, with `replay_on_error`, written to
    stderr after all when the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            if replay_on_error:
                captured.seek(0)
                sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
