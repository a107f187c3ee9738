"""One file describing an experiment's runs: what `python -m kexp.report` writes.

The runs table of each task, its best run and learning curves, its test metric against
parameters and FLOPs, and each search with its trials. HTML (default) is a single
self-contained file, plots embedded as base64 PNG and the style inline, so it can be mailed or
archived and opened offline; Markdown has its plots beside it. The data come from
`kexp.tracking.runs`, the figures from `kexp.tracking.run_plots`, as in
notebooks/compare_runs.ipynb. No TensorFlow.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
import time
from pathlib import Path
from typing import Any

FORMATS = {"html": ".html", "md": ".md"}
COUNT_COLUMNS = ("params", "flops")  # whole numbers worth thousands separators
# kexp.tasks.gan.pictures.GRID_FILE, by name: the tracking room imports no task module
GAN_GRID = "samples_grid.png"
# kexp.tasks.language_model.task.FINAL_SAMPLE: the text a language model's kept weights wrote
LM_SAMPLE = "sample.txt"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0 1em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; } .meta { color: #666; }
"""


def write_report(frame: Any, uri: str, experiment: str, out: Path, fmt: str = "html",
                 top: int = 5) -> Path:
    """Write the report of `frame` (`runs.load_runs(uri, experiment)`) to `out` as `fmt`."""
    doc = HtmlDoc() if fmt == "html" else MarkdownDoc(out)
    _contents(doc, frame, uri, experiment, top)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc.text(f"kexp report: {experiment}"), encoding="utf-8")
    return out


def _contents(doc: HtmlDoc | MarkdownDoc, frame: Any, uri: str, experiment: str,
              top: int) -> None:
    from kexp.tracking import run_plots, runs

    counts = frame["status"].value_counts()
    doc.heading(f"kexp report: {experiment}", 1)
    doc.paragraph(f"{len(frame)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())}) "
                  f"in {uri}; written {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")

    tasks = runs.by_task(frame)
    for number, (task, rows) in enumerate(tasks):
        # one task, as almost every experiment has: the sections and figure names of old
        suffix = "" if len(tasks) == 1 else f" ({task})"
        _task_sections(doc, rows, uri, top, suffix, "" if number == 0 else f"_{task.lower()}")

    parents = runs.searches(frame)
    if not parents.empty:
        doc.heading("Searches", 2)
    for number, (_, parent) in enumerate(parents.iterrows(), start=1):
        run_id = parent["run_id"]
        keys = runs.searched_keys(frame, run_id)
        children = frame[(frame["parent_run_id"] == run_id) & (frame["kind"] == "trial")]
        rank = runs.ranking(children)
        doc.heading(f"{parent['run_name']} ({parent['status']})", 3)
        results = [f"{name} {_cell(parent.get(f'metrics.{name}'), name)}"
                   for name in (f"best_{rank.monitor}", "trials_completed", "trials_failed")
                   if _cell(parent.get(f"metrics.{name}"), name)]
        doc.paragraph("; ".join([f"run {run_id}", f"searched: {', '.join(keys) or 'unknown'}",
                                 *results]))
        table = runs.trials(frame, run_id)
        if table.empty:
            doc.paragraph("No trial has logged a run yet.")
            continue
        doc.table(table)
        if keys:  # from the table: a group choice's column is the one the table found
            doc.figure(run_plots.scatter(table, keys, y=rank.monitor, label="run"),
                       f"search_{number}")


def _task_sections(doc: HtmlDoc | MarkdownDoc, frame: Any, uri: str, top: int, suffix: str,
                   tag: str) -> None:
    """The runs table, the best run and its curves, and the test metric against size and
    cost, for the runs of one task (ranked by its monitor on the test split)."""
    from kexp.tracking import run_plots, runs
    from kexp.tracking.run_labels import run_labels

    rank = runs.ranking(frame)
    doc.heading(f"Runs{suffix}", 2)
    doc.table(runs.summary_table(frame, rank=rank))

    doc.heading(f"Best run{suffix}", 2)
    best = runs.best_run(frame, rank)
    if best is None:
        doc.paragraph(f"No finished run logged test_{rank.name} yet.")
        return
    facts = {f"test_{rank.name}": best.get(rank.metric),
             f"best_{rank.monitor}": best.get(f"metrics.best_{rank.monitor}"),
             **{k: best.get(f"metrics.{k}") for k in rank.extra},
             "model": best["model"], "dataset": best["dataset"],
             **{key: best.get(f"params.{key}") for key in runs.KEY_PARAMS}}
    doc.paragraph(f"{best['run_name']} (run {best['run_id']}): " + ", ".join(
        f"{k} {_cell(v, k)}" for k, v in facts.items() if _cell(v, k)))
    grid = runs.artifact_bytes(uri, best["run_id"], GAN_GRID) if "g_loss" in rank.losses \
        else None
    if grid is not None:  # a GAN: what its generator draws
        doc.image(grid, f"samples{tag}")
    sample = runs.artifact_bytes(uri, best["run_id"], LM_SAMPLE) \
        if "metrics.test_bits_per_token" in frame else None
    if sample is not None:  # a language model: what it writes
        doc.preformatted(sample.decode("utf-8", errors="replace"))
    leaders = runs.top_runs(frame, top, rank)
    history = runs.metric_history(uri, leaders, rank.curves)
    doc.figure(run_plots.learning_curves(history[history["run_id"] == best["run_id"]],
                                         {best["run_id"]: best["run_name"]}, rank),
               f"best_run{tag}")
    if len(leaders) > 1:
        doc.heading(f"Learning curves of the top {len(leaders)} by {rank.label}", 3)
        shown = frame.set_index("run_id").loc[leaders].reset_index()
        names = dict(zip(shown["run_id"], run_labels(shown), strict=True))
        doc.figure(run_plots.learning_curves(history, names, rank), f"top_runs{tag}")
    doc.heading(f"{rank.label.capitalize()} against size and cost", 2)
    doc.figure(run_plots.scatter(frame[frame["kind"] != "trial"],
                                 ["metrics.params", "metrics.flops"], y=rank.metric),
               f"size_and_cost{tag}")


class HtmlDoc:
    """A report as one HTML page: inline style, figures as data: URIs, every text escaped."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def heading(self, text: str, level: int) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self.parts.append(f'<p class="meta">{html.escape(text)}</p>')

    def table(self, frame: Any) -> None:
        header, rows = _cells(frame)
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                       for row in rows)
        self.parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, fig: Any, name: str) -> None:
        self.image(_png(fig), name)

    def preformatted(self, text: str) -> None:
        self.parts.append(f"<pre>{html.escape(text)}</pre>")

    def image(self, png: bytes, name: str) -> None:
        data = base64.b64encode(png).decode("ascii")
        self.parts.append(f'<img alt="{html.escape(name)}" src="data:image/png;base64,{data}">')

    def text(self, title: str) -> str:
        return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
                f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
                + "\n".join(self.parts) + "\n</body></html>\n")


class MarkdownDoc:
    """A report as Markdown, its figures written as PNG files to `<name>_files/` beside it."""

    def __init__(self, out: Path) -> None:
        self.files = out.with_name(f"{out.stem}_files")
        self.parts: list[str] = []

    def heading(self, text: str, level: int) -> None:
        self.parts.append(f"{'#' * level} {_md(text)}")

    def paragraph(self, text: str) -> None:
        self.parts.append(_md(text))

    def table(self, frame: Any) -> None:
        header, rows = _cells(frame)
        lines = [header, ["---"] * len(header), *rows]
        self.parts.append("\n".join("| " + " | ".join(_md(c) for c in line) + " |"
                                    for line in lines))

    def figure(self, fig: Any, name: str) -> None:
        self.image(_png(fig), name)

    def preformatted(self, text: str) -> None:
        fence = "````" if "```" in text else "```"
        self.parts.append(f"{fence}text\n{text}\n{fence}")

    def image(self, png: bytes, name: str) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        (self.files / f"{name}.png").write_bytes(png)
        self.parts.append(f"![{name}]({self.files.name}/{name}.png)")

    def text(self, title: str) -> str:
        return "\n\n".join(self.parts) + "\n"


def _png(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell or line: pipes escaped, one line."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _cells(frame: Any) -> tuple[list[str], list[list[str]]]:
    header = [str(c) for c in frame.columns]
    rows = [[_cell(v, c) for v, c in zip(row, header, strict=True)]
            for row in frame.itertuples(index=False)]
    return header, rows


def _cell(value: Any, column: str) -> str:
    """A value as a reader wants it: counts with separators, seconds to 0.1, others 4 digits."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if column in COUNT_COLUMNS:
            return f"{value:,.0f}"
        if column == "wall_seconds":
            return f"{value:.1f}"
        return str(int(value)) if value.is_integer() and abs(value) < 1e6 else f"{value:.4g}"
    return str(value)


def default_path(log_dir: str, experiment: str, fmt: str) -> Path:
    """<log_dir>/reports/<experiment>.<ext>, the experiment's name made a safe file name."""
    name = re.sub(r"[^\w.-]+", "_", experiment).strip("._") or "experiment"
    return Path(log_dir) / "reports" / f"{name}{FORMATS[fmt]}"
