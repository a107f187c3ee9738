"""task=pointer: a pointer network learns to answer a set of points with positions of it.

The model (a `@pointer_network` builder, kexp/models/pointer_net.py) reads the points and the
decoder input ([START] p1 .. pn: the answer's pointer ids behind START, teacher forcing) and
gives float32 logits over END and the input positions at every decoder position. The loss is
the cross-entropy of p1 .. pn [END], weighted by the batches' weight, 0 on padding, so
neither the loss (Keras' mean_with_sample_weight: the mean over real positions) nor the
per-position accuracy counts a padded position. The monitor is the validation loss.

After training, the kept model answers every test set greedily through kexp.decoding (with
`task.no_repeats`, never pointing at a point twice) and metrics.json gets
test_exact_accuracy (the share of answers right at every position, END included),
test_position_accuracy (the share of answer positions right) and, for data=convex_hull,
test_area_coverage (kexp.tasks.pointer.judge); every answer is in test_pointers.tsv and the
first `task.examples` in pointers.html (with a drawing of each hull).
"""

from __future__ import annotations

import html
import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kexp.config import is_int
from kexp.errors import KexpError
from kexp.tasks.base import Task

if TYPE_CHECKING:
    import keras
    import numpy as np
    from omegaconf import DictConfig

    from kexp.data import DataBundle, DataSpec

EXAMPLES_FILE = "pointers.html"
TSV_FILE = "test_pointers.tsv"
_DATA_ARGS = ("input_shape", "target_shape")


class Pointer(Task):
    """Masked cross-entropy of a pointer network; whole answers, positions and hull areas of
    the greedily decoded test split at the end."""

    LOSSES = ("cross_entropy",)
    METRICS = ("accuracy",)
    TARGETS = "pointers"
    KNOBS = {
        "examples": (lambda v: is_int(v) and v >= 0,
                     "an integer >= 0 (test answers shown in pointers.html)"),
        "no_repeats": (lambda v: isinstance(v, bool),
                       "true or false (true: decoding never points at a point twice)"),
    }
    CURVE_METRIC = "accuracy"

    def check_model(self, model_cfg: DictConfig, allow_targets: Sequence[str] = ()) -> None:
        from kexp.models import resolve_builder
        from kexp.models.pointer_net import is_pointer_network

        if not is_pointer_network(resolve_builder(model_cfg._target_, allow_targets)):
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} is not a "
                            f"pointer network; task=pointer needs one: model=pointer_net")

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        if getattr(spec, "pointer_length", None) is None:
            raise KexpError(f"task=pointer reads point sets, but data={data_name} is not such "
                            f"a set; use data=sort_numbers or data=convex_hull")

    def build_model(self, model_cfg: DictConfig, spec: DataSpec,
                    allow_targets: Sequence[str] = ()) -> keras.Model:
        """The pointer network `model_cfg` names, sized by the points and the answer length."""
        from omegaconf import OmegaConf

        from kexp.models import resolve_builder

        self.check_model(model_cfg, allow_targets)
        builder = resolve_builder(model_cfg._target_, allow_targets)
        knobs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
                 if k not in ("_target_", "name")}
        accepted = inspect.signature(builder).parameters
        unknown = sorted(k for k in knobs if k not in accepted or k in _DATA_ARGS)
        if unknown:
            raise KexpError(f"model.{unknown[0]}: not a setting of {model_cfg._target_}; "
                            f"valid: {', '.join(p for p in accepted if p not in _DATA_ARGS)}")
        return builder(input_shape=tuple(spec.input_shape),
                       target_shape=(int(spec.pointer_length),), **knobs)

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        import keras

        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight")
        # weighted_metrics: Keras 3 hands the sample weights (0 on padding) to these only
        return {"loss": loss,
                "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """The test split answered greedily and judged position by position (and by area
        for convex hulls)."""
        from kexp.tasks.pointer.judge import coverages, position_scores
        from kexp.tasks.pointer.search import decode

        points, target, found, seconds = decode(
            model, data.test, int(data.spec.pointer_length),
            bool(self.settings.get("no_repeats", True)))
        exact, right = position_scores(found, target)
        metrics = {"test_exact_accuracy": round(float(exact.mean()), 4),
                   "test_position_accuracy": round(float(right.mean()), 4)}
        covered = None
        if self._is_hull(points):
            covered = coverages(points, found, target)
            metrics["test_area_coverage"] = round(float(covered.mean()), 4)
        extra = {"decoding_examples_per_second": round(len(points) / seconds, 1)
                 if seconds > 0 else float("nan")}
        files = write_examples(points, target, found, exact, covered, out,
                               int(self.settings.get("examples", 20)))
        return files, metrics, extra

    def _is_hull(self, points: np.ndarray) -> bool:
        """True for convex-hull data (area coverage applies): data.source, else 2-D points."""
        from omegaconf import OmegaConf

        source = OmegaConf.select(self.cfg, "data.source", default=None) \
            if self.cfg is not None else None
        return source == "convex_hull" if source is not None else points.shape[-1] == 2

    def headline(self, metrics: dict[str, Any]) -> str:
        shown = [k for k in ("test_exact_accuracy", "test_position_accuracy",
                             "test_area_coverage", "test_accuracy", "test_loss")
                 if k in metrics]
        return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)


def write_examples(points: np.ndarray, target: np.ndarray, found: np.ndarray,
                   exact: np.ndarray, covered: np.ndarray | None, out: Path, shown: int
                   ) -> list[Path]:
    """Every test answer as a TSV (points, answer, model, exact[, coverage]) and the first
    `shown` as an HTML table, each 2-D set drawn (true hull green, the model's red)."""
    from kexp.data.points import answer
    from kexp.tasks.pointer.judge import until_end

    found = until_end(found)

    def where(x) -> str:
        return " ".join(",".join(f"{c:.4f}" for c in p) for p in x)

    def order(ids) -> str:
        return " ".join(map(str, answer(ids))) if len(answer(ids)) else "(none)"

    header = ["points", "answer", "model", "exact", *(["area_coverage"] if covered is not None
                                                       else [])]
    rows = [[where(x), order(t), order(f), str(int(e)),
             *([f"{covered[i]:.4f}"] if covered is not None else [])]
            for i, (x, t, f, e) in enumerate(zip(points, target, found, exact, strict=True))]
    tsv = out / TSV_FILE
    tsv.write_text("\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows),
                   encoding="utf-8")
    cells = []
    for i, row in enumerate(rows[:shown]):
        picture = _drawing(points[i], answer(target[i]), answer(found[i])) \
            if points.shape[-1] == 2 else ""
        cells.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) +
                     (f"<td>{picture}</td>" if picture else "") + "</tr>\n")
    names = [*header, *(["drawing"] if points.shape[-1] == 2 else [])]
    page = out / EXAMPLES_FILE
    page.write_text("<!doctype html><meta charset='utf-8'><title>test answers</title>\n"
                    "<p>answer and model: input positions in order (from 0)</p>\n"
                    "<table border=1 cellpadding=4><tr>" +
                    "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>\n" +
                    "".join(cells) + "</table>\n", encoding="utf-8")
    return [page, tsv]


def _drawing(points: np.ndarray, truth: list[int], predicted: list[int], size: int = 120
             ) -> str:
    """An inline SVG of 2-D points in the unit square: the true polygon green, the model's
    red and dashed, every point numbered."""
    def xy(p) -> str:
        return f"{5 + p[0] * (size - 10):.1f},{size - 5 - p[1] * (size - 10):.1f}"

    def polygon(order: list[int], style: str) -> str:
        if len(order) < 2:
            return ""
        return f"<polygon points='{' '.join(xy(points[j]) for j in order)}' {style}/>"

    dots = ""
    for j, p in enumerate(points):
        x, y = xy(p).split(",")
        dots += f"<circle cx='{x}' cy='{y}' r='2'/><text x='{x}' y='{y}' font-size='8'>{j}</text>"

    true = polygon(truth, "fill='none' stroke='green' stroke-width='2'")
    model = polygon(predicted, "fill='none' stroke='red' stroke-dasharray='3,2'")
    return (f"<svg width='{size}' height='{size}' style='background:#fafafa'>"
            f"{true}{model}{dots}</svg>")
