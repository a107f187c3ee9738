"""Quality metrics for generated images, computed on a reference classifier's outputs.

A generative run judges its samples the way FID, KID and the inception score do, but on the
features and softmax of a classifier trained on the same data set rather than on
Inception-v3 (which neither fits 28x28 digits nor is available offline):

- `frechet_distance` (FD): the Fréchet distance between Gaussians fitted to real and
  generated features (Heusel et al. 2017), with the numerical guards of the reference
  TTUR / pytorch-fid code;
- `kernel_inception_distance` (KID): the unbiased MMD^2 with the cubic polynomial kernel
  (Bińkowski et al. 2018), averaged over random subsets as tensorflow_gan / torch-fidelity do;
- `classifier_score` (CS): the inception-score formula exp(E_x KL(p(y|x) || p(y))) on the
  classifier's softmax;
- `class_histogram` / `collapse_warning`: which classes the samples land on, and a one-line
  message when they fall onto few of them (mode collapse).

Numbers from a reference classifier compare runs judged by the *same* classifier only; they
are not comparable with published FID/KID/IS values.

numpy and scipy only: no TensorFlow or Keras, so reports and tests use it without loading them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import linalg

__all__ = ["class_histogram", "classifier_score", "collapse_warning", "feature_stats",
           "frechet_distance", "kernel_inception_distance", "quality_scores"]

# pytorch-fid / TTUR's offset for a singular covariance product
FD_EPS = 1e-6
# pytorch-fid's tolerance on the imaginary part of sqrtm's diagonal: numerical noise below it
FD_IMAG_ATOL = 1e-3
# keeps log(0) finite for classes a softmax gives exactly zero probability
CS_EPS = 1e-12
# softmax rows in float32 sum to 1 within ~1e-6; far off means logits or scores were passed
PROB_SUM_ATOL = 1e-3
# collapse_warning lists at most this many dominant classes, to stay one line
MAX_NAMED = 5


def _features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what}: expected a 2-D (samples, features) array, got shape {x.shape}")
    if len(x) < 2:
        raise ValueError(f"{what}: need at least 2 samples, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: contains NaN or infinite values")
    return x


def _probs(p: np.ndarray, what: str = "probs") -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"{what}: expected a non-empty 2-D (samples, classes) array, "
                         f"got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or \
            not np.allclose(p.sum(axis=1), 1.0, atol=PROB_SUM_ATOL):
        raise ValueError(f"{what}: rows must be probabilities (non-negative, summing to 1); "
                         "pass the classifier's softmax, not its logits")
    return p


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mean (d,) and covariance (d, d) of `features` (samples, d), in float64.

    The covariance is the unbiased sample covariance (np.cov, rowvar=False), as in the
    reference FID code; compute the real set's once and pass it to `quality_scores`.
    """
    x = _features(features, "features")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray, eps: float = FD_EPS) -> float:
    """The Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2)), with scipy.linalg.sqrtm.
    As in pytorch-fid / TTUR: when sqrtm of the product comes out non-finite (a singular
    product), `eps` * I is added to both covariances and it is taken again (with a
    RuntimeWarning); a small imaginary part of the root is numerical noise and is dropped,
    a large one (diagonal beyond 1e-3, i.e. the covariances are not positive semi-definite)
    raises ValueError. The exact distance is never negative, so rounding below 0 is clamped
    to 0.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"frechet_distance: shapes do not match: mu1 {mu1.shape}, "
                         f"sigma1 {sigma1.shape}, mu2 {mu2.shape}, sigma2 {sigma2.shape}")

    diff = mu1 - mu2
    with warnings.catch_warnings():
        # covariances of fewer samples than dimensions are singular as a rule; sqrtm still
        # returns a usable root then, and a failed one is caught by the checks below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            warnings.warn(f"frechet_distance: singular covariance product; adding {eps} to "
                          "the diagonal of both covariances", RuntimeWarning, stacklevel=2)
            offset = np.eye(d) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=FD_IMAG_ATOL):
            raise ValueError("frechet_distance: sqrtm(sigma1 sigma2) has an imaginary component "
                             f"of {np.max(np.abs(covmean.imag)):.3g}: are both covariances "
                             "positive semi-definite?")
        covmean = covmean.real
    fd = float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))
    if not math.isfinite(fd):
        raise ValueError("frechet_distance: the result is not finite")
    return max(fd, 0.0)


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    k = x @ y.T
    k /= x.shape[1]
    k += 1.0
    # ** 3 goes through the general pow, several times slower than two multiplies
    cube = k * k
    cube *= k
    return cube


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD^2 estimate between samples x (m, d) and y (n, d): the diagonals of
    k(x, x) and k(y, y) (each point with itself) are left out of their means."""
    m, n = len(x), len(y)
    k_xx, k_yy, k_xy = _polynomial_kernel(x, x), _polynomial_kernel(y, y), _polynomial_kernel(x, y)
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID between feature sets f1 (n1, d) and f2 (n2, d): (mean, std) over subsets.

    The unbiased MMD^2 with the kernel k(x, y) = (x.y / d + 1)^3 (Bińkowski et al. 2018),
    on `num_subsets` pairs of random subsets of `subset_size` points drawn without
    replacement from each set, as torch-fidelity does; `subset_size` is capped by the
    smaller set. std is the population std (ddof=0) of the subset values, as torch-fidelity
    reports it. The estimate is unbiased, so two samples of one distribution score about 0
    and may come out slightly negative. When the subsets are the whole of both sets
    (n1 == n2 <= subset_size) every subset gives the same value, so it is computed once and
    std is 0. `seed` makes the subsets, and so the result, reproducible.
    """
    x, y = _features(f1, "f1"), _features(f2, "f2")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"kernel_inception_distance: feature sizes differ: {x.shape[1]} "
                         f"and {y.shape[1]}")
    if num_subsets < 1 or subset_size < 2:
        raise ValueError("kernel_inception_distance: need num_subsets >= 1 and subset_size >= 2, "
                         f"got {num_subsets} and {subset_size}")
    m = min(subset_size, len(x), len(y))
    if m == len(x) == len(y):
        return _mmd2_unbiased(x, y), 0.0
    rng = np.random.default_rng(seed)
    values = np.array([
        _mmd2_unbiased(x[rng.choice(len(x), m, replace=False)],
                       y[rng.choice(len(y), m, replace=False)])
        for _ in range(num_subsets)])
    return float(values.mean()), float(values.std())


def classifier_score(probs: np.ndarray, num_splits: int = 1) -> float:
    """The inception-score formula on a reference classifier's softmax `probs` (samples, k).

    exp(mean over samples of KL(p(y|x) || p(y))), p(y) the mean of the rows: k for
    confident predictions spread evenly over k classes, 1 when every sample gets the same
    prediction or every prediction is uniform. With `num_splits` > 1 the samples are cut into
    that many consecutive parts, each scored with its own p(y), and the mean of the parts is
    returned (the original recipe used 10 splits of 50k samples; small parts bias the score
    down). Zero probabilities are offset by 1e-12 inside the logs.
    """
    p = _probs(probs)
    if not 1 <= num_splits <= len(p):
        raise ValueError(f"classifier_score: num_splits must be in [1, {len(p)}], "
                         f"got {num_splits}")
    scores = []
    for part in np.array_split(p, num_splits):
        marginal = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part + CS_EPS) - np.log(marginal + CS_EPS))).sum(axis=1)
        scores.append(math.exp(kl.mean()))
    return float(np.mean(scores))


def class_histogram(probs_or_labels: np.ndarray, num_classes: int) -> np.ndarray:
    """How many samples fall on each of `num_classes` classes: an int64 array (num_classes,).

    Takes either the classifier's probabilities or scores (samples, num_classes), counted by
    their argmax, or integer class labels (samples,).
    """
    a = np.asarray(probs_or_labels)
    if a.ndim == 2:
        if a.shape[1] != num_classes:
            raise ValueError(f"class_histogram: {a.shape[1]} columns for {num_classes} classes")
        labels = a.argmax(axis=1)
    elif a.ndim == 1:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise ValueError("class_histogram: 1-D input must be integer class labels, "
                             f"got dtype {a.dtype}")
        labels = a.astype(np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"class_histogram: labels outside [0, {num_classes})")
    else:
        raise ValueError(f"class_histogram: expected (samples, classes) or (samples,), "
                         f"got shape {a.shape}")
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def collapse_warning(histogram: np.ndarray, class_names: Sequence[str] | None = None,
                     min_share: float | None = None, max_share: float = 0.5,
                     min_covered: float = 0.5) -> str | None:
    """A one-line message when generated samples fall onto few classes, else None.

    `histogram` is samples per class (`class_histogram`), k classes. It warns when
    - fewer than `min_covered` (half) of the classes each get at least `min_share` of the
      samples (default 1/(4k): a quarter of an even share, so a class that is merely rare
      still counts), or
    - a single class takes more than max(`max_share`, 1.5/k) of them (half, but with two
      classes three quarters, so a mild tilt between two classes is not called collapse).
    The message names the dominant classes (those above an even share 1/k, at most 5) with
    their shares. An empty histogram has nothing to judge: None.
    """
    counts = np.asarray(histogram, dtype=np.float64)
    k = counts.shape[0] if counts.ndim == 1 else 0
    if k == 0 or (counts < 0).any():
        raise ValueError(f"collapse_warning: expected a 1-D array of counts, got {histogram!r}")
    if class_names is not None and len(class_names) != k:
        raise ValueError(f"collapse_warning: {len(class_names)} class names for {k} classes")
    total = counts.sum()
    if total == 0:
        return None
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    share = counts / total
    floor = 1.0 / (4 * k) if min_share is None else min_share
    ceiling = max(max_share, 1.5 / k)
    covered = int((share >= floor).sum())
    few = covered < min_covered * k
    dominant = share.max() > ceiling
    if not (few or dominant):
        return None
    ranked = np.argsort(-share, kind="stable")
    # a min_share above 1/k can warn with no class above an even share: name the largest then
    order = [i for i in ranked if share[i] > 1.0 / k][:MAX_NAMED] or [ranked[0]]
    top = ", ".join(f"{names[i]} {share[i]:.0%}" for i in order)
    why = (f"'{names[order[0]]}' alone takes {share.max():.0%}" if dominant else
           f"only {covered} of {k} classes get at least {floor:.1%} each")
    return (f"possible mode collapse: {why} of {int(total)} generated samples "
            f"(dominant: {top})")


def quality_scores(gen_features: np.ndarray, gen_probs: np.ndarray, real_features: np.ndarray,
                   real_stats: tuple[np.ndarray, np.ndarray] | None = None, name: str = "",
                   *, kid_subsets: int = 100, kid_subset_size: int = 1000, seed: int = 0,
                   cs_splits: int = 1) -> dict[str, float]:
    """FD, KID (its mean) and the classifier score of generated samples, in one dict.

    Keys are `fd_<name>`, `kid_<name>` and `cs_<name>` (plain `fd`, `kid`, `cs` when `name`
    is empty), e.g. name="refcnn" gives fd_refcnn, kid_refcnn and cs_refcnn: the name says
    which reference classifier judged, since scores from different ones do not compare.
    `gen_features` / `real_features` are that classifier's features (samples, d) of
    generated and real images, `gen_probs` its softmax on the generated ones. `real_stats`
    is the real features' (mu, sigma) from `feature_stats`, so a caller scoring every epoch
    computes them once; KID still needs `real_features` themselves.
    """
    gen = _features(gen_features, "gen_features")
    real = _features(real_features, "real_features")
    if gen.shape[1] != real.shape[1]:
        raise ValueError(f"quality_scores: feature sizes differ: generated {gen.shape[1]}, "
                         f"real {real.shape[1]}")
    mu_real, sigma_real = feature_stats(real) if real_stats is None else real_stats
    mu_gen, sigma_gen = feature_stats(gen)
    suffix = f"_{name}" if name else ""
    kid, _ = kernel_inception_distance(gen, real, kid_subsets, kid_subset_size, seed)
    return {f"fd{suffix}": frechet_distance(mu_gen, sigma_gen, mu_real, sigma_real),
            f"kid{suffix}": kid,
            f"cs{suffix}": classifier_score(gen_probs, cs_splits)}
