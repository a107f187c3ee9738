"""`task=gan`: image generation by a generator and a discriminator (kexp.tasks.gan.task),
judged by a reference classifier of the data set (reference, judge, quality)."""

from kexp.tasks.gan.task import Gan

__all__ = ["Gan"]
