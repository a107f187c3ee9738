"""Image-generation quality metrics (kexp.tasks.gan.quality) against values known in closed
form or computed the slow, obvious way: Fréchet distances of Gaussians, the unbiased MMD^2 as
a plain double loop, classifier scores of hand-made softmax outputs, collapse messages."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import linalg

from kexp.tasks.gan import quality as iq


def rotation(d: int, seed: int) -> np.ndarray:
    """A random orthogonal d x d matrix (QR of a Gaussian one)."""
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def spd(d: int, seed: int) -> np.ndarray:
    """A random symmetric positive-definite d x d matrix."""
    a = np.random.default_rng(seed).normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def fd_closed_commuting(mu1, a, mu2, b) -> float:
    """FD of N(mu1, Q diag(a) Q^T) and N(mu2, Q diag(b) Q^T): the roots act eigenvalue-wise."""
    return float(((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())


def fd_symmetric_form(mu1, s1, mu2, s2) -> float:
    """FD through Tr sqrt(S1^1/2 S2 S1^1/2) from symmetric eigendecompositions: no sqrtm."""
    w, v = np.linalg.eigh(s1)
    root1 = v @ np.diag(np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2)
                 - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


# --- Fréchet distance -----------------------------------------------------------------------

MU1 = np.array([0.0, 1.0, -2.0, 0.5])
MU2 = np.array([1.0, -1.0, 0.5, 0.0])
EIG1 = np.array([1.0, 2.0, 0.5, 3.0])
EIG2 = np.array([2.0, 0.5, 1.0, 1.0])


def test_fd_equal_covariances_is_the_squared_mean_distance():
    sigma = spd(4, seed=0)
    assert iq.frechet_distance(MU1, sigma, MU2, sigma) == pytest.approx(
        float(((MU1 - MU2) ** 2).sum()), rel=1e-9)


def test_fd_diagonal_covariances():
    fd = iq.frechet_distance(MU1, np.diag(EIG1), MU2, np.diag(EIG2))
    assert fd == pytest.approx(fd_closed_commuting(MU1, EIG1, MU2, EIG2), rel=1e-9)


def test_fd_commuting_covariances_in_a_rotated_basis():
    q = rotation(4, seed=3)
    s1, s2 = q @ np.diag(EIG1) @ q.T, q @ np.diag(EIG2) @ q.T
    fd = iq.frechet_distance(MU1, s1, MU2, s2)
    assert fd == pytest.approx(fd_closed_commuting(MU1, EIG1, MU2, EIG2), rel=1e-8)


def test_fd_general_covariances_match_the_symmetric_form_and_are_symmetric():
    s1, s2 = spd(6, seed=1), spd(6, seed=2)
    mu1, mu2 = np.zeros(6), np.linspace(-1, 1, 6)
    fd = iq.frechet_distance(mu1, s1, mu2, s2)
    assert fd == pytest.approx(fd_symmetric_form(mu1, s1, mu2, s2), rel=1e-8)
    assert iq.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(fd, rel=1e-8)


def test_fd_of_identical_distributions_is_zero_even_when_singular():
    sigma = spd(5, seed=4)
    assert iq.frechet_distance(np.ones(5), sigma, np.ones(5), sigma) == \
        pytest.approx(0.0, abs=1e-9)
    # 3 samples in 8 dimensions: a rank-2 covariance, as a small generated batch gives
    mu, s = iq.feature_stats(np.random.default_rng(5).normal(size=(3, 8)))
    fd = iq.frechet_distance(mu, s, mu, s)
    assert 0.0 <= fd < 1e-6


def test_fd_from_samples_is_close_to_the_closed_form():
    q = rotation(4, seed=6)
    s1, s2 = q @ np.diag(EIG1) @ q.T, q @ np.diag(EIG2) @ q.T
    rng = np.random.default_rng(7)
    x = rng.multivariate_normal(MU1, s1, size=20_000)
    y = rng.multivariate_normal(MU2, s2, size=20_000)
    mu_x, sigma_x = iq.feature_stats(x)
    assert mu_x.shape == (4,) and sigma_x.shape == (4, 4) and sigma_x.dtype == np.float64
    fd = iq.frechet_distance(mu_x, sigma_x, *iq.feature_stats(y))
    # sampling error of 20k points: about 1% here (5 seeds spread 3.50..3.56 around 3.54)
    assert fd == pytest.approx(fd_closed_commuting(MU1, EIG1, MU2, EIG2), rel=0.03)


def test_fd_retries_with_an_offset_when_sqrtm_is_not_finite(monkeypatch):
    calls: list[np.ndarray] = []
    real_sqrtm = linalg.sqrtm

    def flaky_sqrtm(a):
        calls.append(a)
        return np.full_like(a, np.nan) if len(calls) == 1 else real_sqrtm(a)

    monkeypatch.setattr(linalg, "sqrtm", flaky_sqrtm)
    eye = np.eye(3)
    with pytest.warns(RuntimeWarning, match="singular"):
        fd = iq.frechet_distance(np.zeros(3), eye, np.zeros(3), eye, eps=1e-3)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], (1 + 1e-3) ** 2 * eye)
    assert fd == pytest.approx(0.0, abs=1e-9)


def test_fd_rejects_a_large_imaginary_root_and_mismatched_shapes():
    # a covariance with a negative eigenvalue: its product's root is imaginary
    with pytest.raises(ValueError, match="imaginary"):
        iq.frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="shapes"):
        iq.frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# --- KID ------------------------------------------------------------------------------------


def mmd2_loops(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, term by term."""
    d, m, n = x.shape[1], len(x), len(y)

    def k(a, b):
        return (float(np.dot(a, b)) / d + 1.0) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_with_whole_sets_matches_the_loop_reference():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(25, 5)), rng.normal(0.3, 1.2, size=(25, 5))
    mean, std = iq.kernel_inception_distance(x, y, num_subsets=7, subset_size=100)
    assert mean == pytest.approx(mmd2_loops(x, y), rel=1e-10)
    assert std == 0.0


def test_kid_is_about_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(9)
    x, y = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
    same, same_std = iq.kernel_inception_distance(x, y, num_subsets=20, subset_size=300)
    shifted, _ = iq.kernel_inception_distance(x, y + 0.5, num_subsets=20, subset_size=300)
    assert abs(same) < 0.01 and same_std > 0
    assert shifted > 0.2 and shifted > 20 * abs(same)


def test_kid_is_reproducible_and_caps_the_subset_size():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(40, 4)), rng.normal(1.0, 1.0, size=(90, 4))
    a = iq.kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=3)
    assert a == iq.kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=3)
    assert a != iq.kernel_inception_distance(x, y, num_subsets=5, subset_size=1000, seed=4)
    assert all(math.isfinite(v) for v in a) and a[0] > 0
    with pytest.raises(ValueError, match="feature sizes"):
        iq.kernel_inception_distance(x, y[:, :3])


# --- classifier score -----------------------------------------------------------------------


def test_classifier_score_of_confident_predictions_spread_evenly_is_k():
    k = 7
    probs = np.eye(k)[np.arange(70) % k]
    assert iq.classifier_score(probs) == pytest.approx(k, rel=1e-9)
    assert iq.classifier_score(probs, num_splits=5) == pytest.approx(k, rel=1e-9)


def test_classifier_score_is_one_for_a_single_class_or_uniform_predictions():
    assert iq.classifier_score(np.tile(np.eye(5)[2], (30, 1))) == pytest.approx(1.0, abs=1e-9)
    assert iq.classifier_score(np.full((30, 5), 0.2)) == pytest.approx(1.0, abs=1e-9)


def test_classifier_score_rejects_logits():
    with pytest.raises(ValueError, match="logits"):
        iq.classifier_score(np.array([[2.0, -1.0], [0.5, 0.1]]))


# --- class histogram and collapse -----------------------------------------------------------

NAMES = [f"c{i}" for i in range(10)]


def test_class_histogram_counts_argmax_or_labels():
    probs = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    np.testing.assert_array_equal(iq.class_histogram(probs, 3), [1, 2, 0])
    np.testing.assert_array_equal(iq.class_histogram(np.array([2, 2, 0]), 4), [1, 0, 2, 0])
    with pytest.raises(ValueError):
        iq.class_histogram(np.array([0, 5]), 4)


def test_collapse_warning_names_the_dominant_class():
    hist = np.array([10, 10, 10, 900, 10, 10, 10, 10, 10, 20])
    msg = iq.collapse_warning(hist, NAMES)
    assert msg is not None and "\n" not in msg
    assert "c3" in msg and "90%" in msg


def test_collapse_warning_when_samples_cover_few_classes():
    # four classes at 25% each: no single one dominates, but six of ten get nothing
    msg = iq.collapse_warning(np.array([250, 0, 250, 0, 0, 250, 0, 0, 250, 0]), NAMES)
    assert msg is not None and "4 of 10" in msg
    assert all(name in msg for name in ("c0", "c2", "c5", "c8"))


def test_collapse_warning_is_quiet_for_balanced_or_mildly_uneven_samples():
    assert iq.collapse_warning(np.full(10, 100), NAMES) is None
    assert iq.collapse_warning(np.array([300, 40, 80, 100, 90, 60, 110, 70, 50, 100])) is None
    assert iq.collapse_warning(np.array([55, 45]), ["cat", "dog"]) is None
    assert iq.collapse_warning(np.zeros(3)) is None


# --- quality_scores -------------------------------------------------------------------------


def test_quality_scores_keys_and_precomputed_real_stats():
    rng = np.random.default_rng(11)
    real, gen = rng.normal(size=(200, 6)), rng.normal(0.5, 1.0, size=(150, 6))
    probs = np.eye(3)[np.arange(150) % 3]
    scores = iq.quality_scores(gen, probs, real, name="refcnn", kid_subsets=5,
                               kid_subset_size=100)
    assert set(scores) == {"fd_refcnn", "kid_refcnn", "cs_refcnn"}
    assert all(isinstance(v, float) for v in scores.values())
    assert scores["fd_refcnn"] > 0 and scores["kid_refcnn"] > 0
    assert scores["cs_refcnn"] == pytest.approx(3.0, rel=1e-9)
    again = iq.quality_scores(gen, probs, real, real_stats=iq.feature_stats(real),
                              name="refcnn", kid_subsets=5, kid_subset_size=100)
    assert again == pytest.approx(scores, rel=1e-12)
    assert set(iq.quality_scores(gen, probs, real, kid_subsets=2, kid_subset_size=50)) == \
        {"fd", "kid", "cs"}
