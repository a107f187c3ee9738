"""Hydra configs, shipped inside the package so an installed kexp finds them (pkg://kexp.conf)."""
