"""Judging decoded pointer answers: whole answers and positions right, and for convex hulls
the area coverage of Vinyals et al. (2015): the area of the predicted polygon over the area
of the true hull, a prediction that is no valid polygon counting 0.

Hand-written (numpy only; shapely is not a dependency of kexp): the polygon area is the
shoelace formula over the vertices in the order the model wrote them, and a polygon is valid
when it has at least 3 vertices, none repeated, a non-zero area and no two of its edges
meet except neighbours at their shared vertex (a simple polygon). Every vertex is one of
the input points, all of which lie in the true hull, so a valid prediction covers at most
all of it (a coverage <= 1, 1 for the hull itself in either orientation).
"""

from __future__ import annotations

import numpy as np

from kexp.data.points import END_ID, PAD_ID, answer


def until_end(ids: np.ndarray) -> np.ndarray:
    """Decoded pointer ids (n, L) with everything after each row's first END set to padding."""
    ids = np.array(ids, np.int32, copy=True)
    ended = np.cumsum(ids == END_ID, axis=1) - (ids == END_ID) > 0
    ids[ended] = PAD_ID
    return ids


def position_scores(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(exact (n,) bool, right (n,) float: the share of each answer's positions, END
    included, that `predicted` got right) of decoded ids against target ids, both (n, L); a
    prediction is cut at its first END."""
    predicted = until_end(predicted)
    real = np.asarray(target) != PAD_ID
    hits = (predicted == np.asarray(target)) & real
    return hits.sum(axis=1) == real.sum(axis=1), hits.sum(axis=1) / np.maximum(1, real.sum(1))


def polygon_area(vertices: np.ndarray) -> float:
    """Signed area of a polygon given by its vertices (m, 2) in order (shoelace formula):
    positive counter-clockwise."""
    x, y = np.asarray(vertices, np.float64).T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _orientation(a, b, c) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _segments_meet(p1, p2, q1, q2) -> bool:
    """True when the closed segments p1p2 and q1q2 have a point in common."""
    d1, d2 = _orientation(q1, q2, p1), _orientation(q1, q2, p2)
    d3, d4 = _orientation(p1, p2, q1), _orientation(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and 0 not in (d1, d2, d3, d4):
        return True

    def on(a, b, c, d) -> bool:  # c collinear with a-b and within its box
        return d == 0 and min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and \
            min(a[1], b[1]) <= c[1] <= max(a[1], b[1])

    return on(q1, q2, p1, d1) or on(q1, q2, p2, d2) or on(p1, p2, q1, d3) or on(p1, p2, q2, d4)


def is_simple(vertices: np.ndarray) -> bool:
    """True for a polygon (m >= 3 vertices in order) whose edges meet only where neighbours
    share a vertex."""
    v = [tuple(map(float, p)) for p in np.asarray(vertices, np.float64)]
    m = len(v)
    if m < 3:
        return False
    edges = [(v[i], v[(i + 1) % m]) for i in range(m)]
    for i in range(m):
        for j in range(i + 1, m):
            if j == i + 1 or (i == 0 and j == m - 1):  # neighbours: they share a vertex
                continue
            if _segments_meet(*edges[i], *edges[j]):
                return False
    return True


def area_coverage(points: np.ndarray, predicted: list[int], truth: list[int]) -> float:
    """Area of the polygon through `points[predicted]` over the area of the true hull
    `points[truth]`; 0 when the prediction is no valid polygon."""
    if len(predicted) < 3 or len(set(predicted)) != len(predicted) or \
            any(not 0 <= p < len(points) for p in predicted):
        return 0.0
    polygon = np.asarray(points, np.float64)[predicted]
    area = abs(polygon_area(polygon))
    if area <= 0 or not is_simple(polygon):
        return 0.0
    return area / abs(polygon_area(np.asarray(points, np.float64)[truth]))


def coverages(points: np.ndarray, predicted: np.ndarray, target: np.ndarray) -> np.ndarray:
    """area_coverage of every example: points (n, k, 2), decoded and target ids (n, L)."""
    return np.array([area_coverage(x, answer(p), answer(t))
                     for x, p, t in zip(points, until_end(predicted), target, strict=True)])
