"""Experiment tracking: one tracked run per training run (MLflow, or nothing)."""

from kexp.tracking.tracker import MlflowTracker, NullTracker, Tracker, make_tracker

__all__ = ["MlflowTracker", "NullTracker", "Tracker", "make_tracker"]
