"""`task=pointer`: a pointer network (model=pointer_net) writes a sequence of positions of its
input (kexp.tasks.pointer.task): numbers in ascending order (data=sort_numbers), a convex
hull's vertices (data=convex_hull). Judged by masked cross-entropy and per-position accuracy
while training, and by the greedily decoded test split at the end: whole answers right,
positions right and, for hulls, the area the predicted polygon covers
(kexp.tasks.pointer.judge)."""

from kexp.tasks.pointer.task import Pointer

__all__ = ["Pointer"]
