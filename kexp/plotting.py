"""The one way kexp gets matplotlib's pyplot for the pictures a run writes to files."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend: no display on servers and CI. Imported only when
    a picture is drawn (matplotlib costs a second to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
