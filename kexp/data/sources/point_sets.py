"""`data=sort_numbers` and `data=convex_hull`: generated point sets for pointer networks
(Vinyals et al., 2015), the answer of each a sequence of positions in its input.

- sort_numbers: `data.points` numbers drawn uniformly from [0, 1) (points of one coordinate,
  (k, 1)); the answer is their positions in ascending order of value.
- convex_hull: `data.points` points drawn uniformly from the unit square ((k, 2)); the answer
  is the vertices of their convex hull (scipy.spatial.ConvexHull, Qhull: points on an edge
  are not vertices) in counter-clockwise order, starting from the vertex with the smallest
  position: one canonical order per set, as in the paper.

Each split is drawn from its own stream of the run's seed (numpy SeedSequence([seed, split])),
so the test split stays the same whatever `data.train_examples` is, and a run with the same
seed sees the same sets. `data.subset` (debug=fast) keeps the first examples of each split.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from kexp.data import keys
from kexp.data.raw import PointSet, RawPoints
from kexp.errors import KexpError

PROBLEMS = {"sort_numbers": 1, "convex_hull": 2}  # data.source -> coordinates of a point
LEAST = {"sort_numbers": 2, "convex_hull": 3}  # the fewest points a set of it can have
SPLITS = ("train", "val", "test")


def load_raw(cfg: DictConfig, seed: int) -> RawPoints:
    """The generated train, val and test point sets that `cfg` (the `data` group) sizes."""
    problem = keys.get(cfg, "source")
    if problem not in PROBLEMS:
        raise KexpError(f"data.source: {problem!r} is not a point-set problem; expected one of "
                        f"{', '.join(PROBLEMS)}")
    points = keys.positive_int(cfg, "points")
    if points < LEAST[problem]:
        raise KexpError(f"data.points: {points} is too few for {problem}; expected an integer "
                        f">= {LEAST[problem]}")
    sizes = [keys.positive_int(cfg, f"{split}_examples") for split in SPLITS]
    subset = keys.positive_int(cfg, "subset", None, allow_none=True)  # debug=fast
    if subset is not None:  # the first examples of each split's stream
        sizes = [min(n, subset) for n in sizes]
    splits = [generate(problem, n, points, np.random.default_rng([int(seed), i]))
              for i, n in enumerate(sizes)]
    return RawPoints(*splits)


def generate(problem: str, n: int, points: int, rng: np.random.Generator) -> PointSet:
    """`n` sets of `points` points of `problem` and their answers."""
    x = rng.random((n, points, PROBLEMS[problem]), dtype=np.float64)
    if problem == "sort_numbers":
        orders = [list(map(int, order)) for order in np.argsort(x[:, :, 0], axis=1,
                                                                 kind="stable")]
        return PointSet(x.astype(np.float32), orders)
    orders = []
    for i in range(n):
        while True:  # a degenerate set (all on one line: probability 0) is drawn again
            try:
                orders.append(hull_order(x[i].astype(np.float32)))
                break
            except ValueError:
                x[i] = rng.random((points, 2))
    return PointSet(x.astype(np.float32), orders)


def hull_order(points: np.ndarray) -> list[int]:
    """The positions of the convex hull's vertices of `points` (k, 2), counter-clockwise,
    starting from the smallest position. A set with no 2-D hull is a ValueError."""
    from scipy.spatial import ConvexHull, QhullError

    try:
        vertices = [int(v) for v in ConvexHull(np.asarray(points, np.float64)).vertices]
    except QhullError as err:
        raise ValueError(f"no 2-D convex hull: {str(err).splitlines()[0]}") from None
    # Qhull gives a 2-D hull's vertices counter-clockwise; rotate to the smallest first
    start = vertices.index(min(vertices))
    return vertices[start:] + vertices[:start]
