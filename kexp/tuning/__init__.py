"""Hyperparameter search: search spaces from config, keras-tuner glue, parent and child runs."""
