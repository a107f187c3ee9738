"""task=pointer (Pointer Networks, Vinyals et al., 2015): a tiny sort run through the same code
as `python -m kexp` learns far above chance, the convex-hull answers against a brute-force
hull, the area coverage, the batches and their padding weights, the model's padding
invariance, decoding without repeats, and bad input in one line. Kept small: the whole file
runs in well under a minute on two cores."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from itertools import permutations

import numpy as np
import pytest

from kexp.errors import KexpError
from tests.conftest import compose_train
from tests.test_e2e import run_dirs

TINY = ["task=pointer", "trainer.verbose=0", "trainer.batch_size=32", "logger=none",
        "callbacks.early_stopping.enabled=false", "data.val_examples=100",
        "data.test_examples=200", "model.units=64", "model.embedding_dim=32",
        "model.attention_units=32", "optimizer.lr=0.01"]


@pytest.fixture(scope="module")
def sort_run(tmp_path_factory):
    from kexp.recipe import train

    root = tmp_path_factory.mktemp("pointer")
    cfg = compose_train([*TINY, "data=sort_numbers", "data.points=5",
                         "data.train_examples=1000", "trainer.epochs=6",
                         f"paths.log_dir={root / 'logs'}"])
    return train(cfg), run_dirs(root / "logs")[-1]


def test_a_pointer_network_learns_to_sort_far_above_chance(sort_run):
    metrics, run = sort_run
    # chance is 1/120 for a whole answer of 5 numbers (1/5! orders)
    assert metrics["test_exact_accuracy"] > 0.3, metrics
    assert metrics["test_position_accuracy"] > 0.6, metrics
    assert metrics["test_accuracy"] > 0.6 and "test_area_coverage" not in metrics, metrics
    assert json.loads((run / "metrics.json").read_text())["test_exact_accuracy"] == \
        metrics["test_exact_accuracy"]
    rows = [r.split("\t") for r in (run / "test_pointers.tsv").read_text().splitlines()]
    assert rows[0] == ["points", "answer", "model", "exact"] and len(rows) == 201
    right = [r for r in rows[1:] if r[3] == "1"]
    assert len(right) / 200 == pytest.approx(metrics["test_exact_accuracy"])
    values = [float(v) for v in right[0][0].split()]
    assert [int(i) for i in right[0][2].split()] == list(np.argsort(values))
    assert (run / "pointers.html").read_text().count("<tr>") == 21  # header + task.examples


def test_kexp_eval_reproduces_the_test_loss(sort_run):
    from kexp.recipe import evaluate

    metrics, run = sort_run
    again = evaluate(run)
    assert math.isclose(again["test_loss"], metrics["test_loss"], rel_tol=1e-5)


def test_a_hull_run_reports_the_area_coverage_and_draws_its_answers(tmp_path):
    from kexp.recipe import train

    cfg = compose_train([*TINY, "data=convex_hull", "data.points=6", "data.train_examples=300",
                         "data.test_examples=50", "trainer.epochs=2", "task.no_repeats=false",
                         "task.examples=5", f"paths.log_dir={tmp_path / 'logs'}"])
    metrics = train(cfg)
    assert 0 <= metrics["test_area_coverage"] <= 1, metrics
    assert 0 <= metrics["test_exact_accuracy"] <= metrics["test_position_accuracy"] <= 1
    run = run_dirs(tmp_path / "logs")[-1]
    rows = (run / "test_pointers.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["points", "answer", "model", "exact", "area_coverage"]
    assert len(rows) == 51
    assert (run / "pointers.html").read_text().count("<svg") == 5


def brute_force_hull(points: np.ndarray) -> list[int]:
    """Hull vertices counter-clockwise from the smallest position: i -> j is an edge when
    every other point lies strictly to its left."""
    def left(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    after = {}
    for i, j in permutations(range(len(points)), 2):
        if all(left(points[i], points[j], points[m]) > 0 for m in range(len(points))
               if m not in (i, j)):
            after[i] = j
    order = [min(after)]
    while after[order[-1]] != order[0]:
        order.append(after[order[-1]])
    return order


def test_convex_hull_answers_match_a_brute_force_hull():
    from kexp.data.sources.point_sets import generate, hull_order

    data = generate("convex_hull", 40, 8, np.random.default_rng(3))
    assert data.points.shape == (40, 8, 2) and data.points.dtype == np.float32
    for x, order in zip(data.points, data.orders, strict=True):
        assert order == brute_force_hull(x.astype(np.float64))
    square = np.array([[1, 1], [0, 0], [0.5, 0.5], [1, 0], [0, 1]], np.float32)
    assert hull_order(square) == [0, 4, 1, 3]  # the centre is no vertex; CCW from 0
    numbers = generate("sort_numbers", 3, 6, np.random.default_rng(0))
    for x, order in zip(numbers.points, numbers.orders, strict=True):
        assert list(np.argsort(x[:, 0])) == order


def test_area_coverage_is_one_for_the_hull_and_less_or_zero_otherwise():
    from kexp.tasks.pointer.judge import area_coverage, polygon_area

    points = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.25]])
    hull = [0, 1, 2, 3]
    assert polygon_area(points[hull]) == pytest.approx(1.0)  # counter-clockwise: positive
    assert area_coverage(points, hull, hull) == pytest.approx(1.0)
    assert area_coverage(points, [3, 2, 1, 0], hull) == pytest.approx(1.0)  # clockwise too
    assert area_coverage(points, [0, 4, 1, 2, 3], hull) == pytest.approx(0.875)  # a dent
    assert area_coverage(points, [0, 1, 2], hull) == pytest.approx(0.5)
    assert area_coverage(points, [0, 2, 1, 3], hull) == 0.0  # edges cross: not a polygon
    assert area_coverage(points, [0, 1, 1, 2], hull) == 0.0  # a point twice
    assert area_coverage(points, [0, 1], hull) == 0.0


def test_position_scores_cut_a_prediction_at_its_end():
    from kexp.tasks.pointer.judge import position_scores

    target = np.array([[4, 3, 5, 2, 0], [3, 4, 2, 0, 0]])
    found = np.array([[4, 3, 5, 2, 2], [3, 2, 4, 2, 0]])  # the second ends too early
    exact, right = position_scores(found, target)
    assert exact.tolist() == [True, False]
    assert right.tolist() == pytest.approx([1.0, 1 / 3])


def test_batches_teach_the_answer_behind_start_with_padding_weighted_zero():
    from kexp.data import load
    from kexp.data.points import END_ID, FIRST_POINT, START_ID

    cfg = compose_train(["task=pointer", "data=convex_hull", "data.points=6",
                         "data.train_examples=50", "data.val_examples=10",
                         "data.test_examples=20"])
    data = load(cfg.data, 8, seed=0)
    assert data.spec.input_shape == (6, 2) and data.spec.pointer_length == 7
    (x, tin), tout, weight = next(data.test.as_numpy_iterator())
    for row in range(len(x)):
        n = int(weight[row].sum()) - 1  # hull vertices
        order = brute_force_hull(x[row].astype(np.float64))
        assert list(tout[row, :n] - FIRST_POINT) == order and tout[row, n] == END_ID
        assert tin[row, 0] == START_ID and list(tin[row, 1:n + 1]) == list(tout[row, :n])
        assert not tout[row, n + 1:].any() and not tin[row, n + 1:].any()
    np.testing.assert_array_equal(weight, (tout != 0).astype(np.float32))
    again = load(cfg.data, 8, seed=0)
    np.testing.assert_array_equal(next(again.test.as_numpy_iterator())[0][0], x)  # seeded


def test_padded_decoder_positions_change_nothing_and_decoding_never_repeats():
    from kexp.data.points import END_ID
    from kexp.models.pointer_net import pointer_net
    from kexp.tasks.pointer.judge import until_end
    from kexp.tasks.pointer.search import NoRepeats

    model = pointer_net((5, 2), (6,), units=16, embedding_dim=8, attention_units=8)
    x = np.random.default_rng(0).random((2, 5, 2)).astype("float32")
    ids = np.array([[1, 5, 7, 0, 0, 0], [1, 3, 6, 4, 0, 0]], np.int32)
    other = ids.copy()
    other[0, 3:], other[1, 4:] = [4, 6, 3], [2, 7]  # anything where the padding was
    a, b = model([x, ids]).numpy(), model([x, other]).numpy()
    assert a.shape == (2, 6, 8) and (a[:, :, :2] == -1e9).all()  # never padding or START
    np.testing.assert_allclose(a[0, :3], b[0, :3], atol=1e-6)
    np.testing.assert_allclose(a[1, :4], b[1, :4], atol=1e-6)

    from kexp.decoding import Decoder

    decoded = Decoder(NoRepeats(model), 6)([1], n=2, length=6, temperature=0.0, source=x).ids
    for row in until_end(decoded):
        points = [int(i) for i in row if i > END_ID]
        assert len(points) == len(set(points))
    assert (NoRepeats(model)([x, ids]).numpy()[0, 2, [5, 7]] == -1e9).all()


def test_bad_input_is_one_line(tmp_path):
    from kexp.config import validate
    from kexp.recipe import train

    with pytest.raises(KexpError, match=r"^data.points: 1 is not valid; expected an integer "
                                        r">= 2"):
        validate(compose_train(["task=pointer", "data.points=1"]))
    done = subprocess.run([sys.executable, "-m", "kexp", "task=pointer", "data=convex_hull",
                           "data.points=1", f"paths.log_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip().startswith("kexp: error: data.points")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    run = ["logger=none", f"paths.log_dir={tmp_path}"]
    small = [*run, "data.train_examples=20", "data.val_examples=5", "data.test_examples=5"]
    cases = [(["task=pointer", "data=convex_hull", "data.points=2", *small],
              "data.points: 2 is too few for convex_hull"),
             (["task=pointer", "model=lstm", *small], r"model=lstm is not a pointer network; "
                                                      r"task=pointer needs one: model=pointer_net"),
             (["model=pointer_net", *run], "model=pointer_net reads points and points at "
                                           "them: use it with task=pointer"),
             (["task=pointer", "data=digits", *run], "task=pointer reads point sets, but "
                                                     "data=digits is not such a set"),
             (["task=seq2seq", "data=sort_numbers", *small], "task=seq2seq reads sentence pairs")]
    for overrides, match in cases:
        with pytest.raises(KexpError, match=match) as caught:
            train(compose_train(overrides))
        assert "\n" not in str(caught.value)
