"""Where examples come from: one module per `data.source`, each with a `load_raw(cfg, seed)`
returning `kexp.data.raw.RawSplits` (unbatched train/val/test and what they hold). They know
files, TFDS and scikit-learn; the pipeline stages (kexp.data.pipeline, kexp.data.text) know
tf.data. A user's own source is a function with the same signature named by `data._target_`.
"""
