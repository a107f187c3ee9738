"""The adversarial losses `task.loss` names, per example, from the discriminator's scores.

Written out rather than taken from `keras.losses`: each returns one value per example so
the GAN's train step can divide the sum by the *global* batch under tf.distribute (see
kexp.tasks.gan.model), and Keras' `label_smoothing` is two-sided while a GAN's is one-sided
(real targets only, Salimans et al. 2016).
"""

from __future__ import annotations

from keras import ops

from kexp.tasks.gan.task import Gan

LOSSES = Gan.LOSSES


def discriminator_loss(kind: str, real, fake, smoothing: float = 0.0):
    """Per-example loss of the discriminator on real and generated scores."""
    if kind == "bce":  # cross-entropy on logits: softplus(-s) is -log sigmoid(s)
        target = 1.0 - smoothing
        on_real = target * ops.softplus(-real) + (1.0 - target) * ops.softplus(real)
        return on_real + ops.softplus(fake)
    if kind == "lsgan":  # Mao et al. 2017, targets 1 (real) and 0 (fake)
        return 0.5 * (ops.square(real - (1.0 - smoothing)) + ops.square(fake))
    if kind == "hinge":  # Lim & Ye 2017; Miyato et al. 2018
        return ops.relu(1.0 - real) + ops.relu(1.0 + fake)
    if kind == "wgan_gp":  # Gulrajani et al. 2017, the penalty is added by the train step
        return fake - real
    raise ValueError(f"unknown GAN loss {kind!r}; expected one of {', '.join(LOSSES)}")


def generator_loss(kind: str, fake):
    """Per-example loss of the generator on the scores of its images."""
    if kind == "bce":  # non-saturating: maximize log D(G(z)) (Goodfellow et al. 2014)
        return ops.softplus(-fake)
    if kind == "lsgan":
        return 0.5 * ops.square(fake - 1.0)
    if kind in ("hinge", "wgan_gp"):
        return -fake
    raise ValueError(f"unknown GAN loss {kind!r}; expected one of {', '.join(LOSSES)}")


def judged_real(kind: str, real, fake):
    """Whether the discriminator calls each real and each generated image real: its score
    above 0 (a logit, a hinge margin), above 0.5 for lsgan, and for a critic (wgan_gp, whose
    scores have no fixed scale) above the batch's mean score of the other kind."""
    if kind == "wgan_gp":
        return real > ops.mean(fake), fake > ops.mean(real)
    threshold = 0.5 if kind == "lsgan" else 0.0
    return real > threshold, fake > threshold
