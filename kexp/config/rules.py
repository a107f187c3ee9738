"""Checks on a composed config that Hydra cannot make on plain YAML: types and ranges.

They run before TensorFlow is imported or data is read, so a typo costs a second,
not a stack trace after the first epoch. Each key's rule is written once, here (RULES, and
FAMILY_RULES for the model keys whose valid values depend on the model family); code that
reads a key without `validate` having run (kexp used from Python) calls `check(key, value)`.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from omegaconf import DictConfig, OmegaConf

from kexp.errors import KexpError


def validate_types(cfg: DictConfig, defaults: DictConfig) -> None:
    """Every value must have the type of its default: `trainer.epochs=abc` names the key."""
    given = OmegaConf.to_container(cfg, resolve=False)
    for key, default in _leaves(OmegaConf.to_container(defaults, resolve=False)):
        if key.startswith("hydra.") or default is None or _is_interpolation(default):
            continue
        value = _get(given, key)
        if value is None or _is_interpolation(value) or _same_kind(value, default):
            continue
        raise KexpError(f"{key}: expected {_kind(default)}, got {value!r}")


def check_complete(cfg: DictConfig) -> None:
    """A `???` left in the config (data.path for npz/image_folder) is named before any work."""
    tree = OmegaConf.to_container(cfg, resolve=False)
    # Hydra's own section holds `???` keys it fills in itself (hydra.job.num)
    missing = sorted(k for k, v in _leaves(tree) if v == "???" and not k.startswith("hydra."))
    if missing:
        raise KexpError(f"{missing[0]} is required here: add {missing[0]}=... to the command")


def validate(cfg: DictConfig) -> None:
    """Range checks on the keys every run reads, and the `_target_` allowlist."""
    if OmegaConf.select(cfg, "task", default=None) is not None:
        check_task(cfg)  # first: other keys interpolate the task's monitor and mode
    family = model_family(OmegaConf.select(cfg, "model._target_", default=None))
    for key in {**RULES, **FAMILY_RULES.get(family, {})}:
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is not _MISSING:
            check(key, value, family)
    _check_together(cfg)
    target = OmegaConf.select(cfg, "model._target_", default=None)
    if target is not None:
        check_target("model._target_", target, allowed_targets(cfg))
    target = OmegaConf.select(cfg, "data._target_", default=None)
    if target is not None:  # a user's own data source
        check_target("data._target_", target, allowed_targets(cfg))


def check_task(cfg: DictConfig) -> None:
    """`task.*` against the task's own rules (kexp.tasks, no TensorFlow), and the tuner's
    objective against the metrics that task logs."""
    from kexp.tasks import make_task

    task = make_task(cfg)
    for key in ("tuner.objective", *(f"callbacks.{c}.monitor"
                                     for c in ("early_stopping", "checkpoint", "reduce_lr"))):
        value = OmegaConf.select(cfg, key, default=_MISSING)
        if value is not _MISSING and value not in task.logged_metrics():
            raise KexpError(f"{key}: {value!r} is not a metric this task logs; expected one of "
                            f"{', '.join(task.logged_metrics())}")


# Modules whose callables a config may name as `_target_` without the user opting in: a
# `_target_` is imported and called, so a config from elsewhere (a shared experiment, a
# downloaded best.yaml) could otherwise run `os.system` or any other installed function.
TRUSTED_TARGETS = ("kexp", "keras")


def allowed_targets(cfg: DictConfig) -> list[str]:
    """`kexp.allow_targets`: module prefixes or dotted names the user trusts besides kexp, keras."""
    value = OmegaConf.select(cfg, "kexp.allow_targets", default=None)
    if value is None:
        return []
    value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise KexpError(f"kexp.allow_targets: {value!r} is not valid; expected a list of module "
                        f"names or dotted paths, e.g. kexp.allow_targets=[mypkg.models]")
    return value


def check_target(key: str, target: Any, allowed: Sequence[str] = ()) -> None:
    """Refuse a `_target_` outside kexp.*, keras.* and `allowed`, before anything is imported."""
    if not isinstance(target, str) or not target.strip():
        raise KexpError(f"{key}: {target!r} is not valid; expected the dotted path of a builder "
                        f"function, e.g. kexp.models.mlp.mlp")
    if any(target == prefix or target.startswith(prefix + ".")
           for prefix in (*TRUSTED_TARGETS, *allowed)):
        return
    raise KexpError(f"{key}: {target!r} is not allowed; kexp only builds from kexp.* and "
                    f"keras.*; add its module to kexp.allow_targets=[...] to trust it")


def import_target(key: str, target: Any, allowed: Sequence[str] = ()) -> Any:
    """The callable or class `target` (`key`'s dotted path) names, imported only once
    `check_target` trusts it; a missing module or name is one KexpError line."""
    check_target(key, target, allowed)
    module_name, _, name = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise KexpError(f"{key}: cannot import '{target}' ({exc})") from None


def allowlist_of(node: Any) -> list[str]:
    """`kexp.allow_targets` of the whole config a group `node` belongs to ([] for a lone
    group): OmegaConf keeps a child node's link to its root, so `build(cfg.model, ...)` honours
    the run's allowlist without every caller passing it."""
    root = node._get_root() if isinstance(node, DictConfig) else None
    if root is None or root is node:
        return []
    return allowed_targets(root)


def check(key: str, value: Any, family: str | None = None,
          wording: str = "is not valid; expected") -> Any:
    """`value` when the rule for `key` accepts it, else the one-line KexpError `validate` raises.

    For code that reads a key without `validate` having run (kexp used from Python), so that
    each rule is written once, here. `family`: the model family (`model_family`) whose own
    rule for a `model.*` key wins over the general one. `wording`: what stands between the
    value and the rule's expected text ("must be" where a module's message always said so)."""
    test, expected = rule(key, family)
    plain = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    if not test(plain):
        raise KexpError(f"{key}: {plain!r} {wording} {expected}")
    return value


def rule(key: str, family: str | None = None) -> tuple[Callable[[Any], bool], str]:
    """The (check, expected) rule of `key`, the model family's own when it has one."""
    found = FAMILY_RULES.get(family or "", {}).get(key) or RULES.get(key)
    if found is None:
        raise KeyError(f"kexp.config has no rule for {key}")
    return found


def model_family(target: Any) -> str | None:
    """The kexp model family a `model._target_` builds (kexp.models.rnn.rnn: rnn), else None."""
    if isinstance(target, str) and target.startswith("kexp.models.") and target.count(".") == 3:
        return target.split(".")[2]
    return None


def _check_together(cfg: DictConfig) -> None:
    """Rules on two keys at once."""
    clipping = [k for k in ("clipnorm", "clipvalue")
                if OmegaConf.select(cfg, f"optimizer.{k}", default=None) is not None]
    if len(clipping) == 2:  # Keras refuses the optimizer
        raise KexpError("optimizer.clipnorm and optimizer.clipvalue are both set; set at most "
                        "one (the other to null)")
    name = OmegaConf.select(cfg, "logger.register_model", default=None)
    if name is not None and OmegaConf.select(cfg, "logger.log_model", default=True) is False:
        raise KexpError(f"logger.register_model={name} registers the logged model; it needs "
                        "logger.log_model=true")


_MISSING = object()


def is_int(v: Any) -> bool:
    """True for ints (numpy's too) but not bools, which Python counts as ints."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """True for ints and floats (numpy's too) but not bools."""
    return is_int(v) or isinstance(v, (float, np.floating))


# tuner.distributed.role: keras-tuner's chief serves the oracle, workers run trials
ROLES = ("none", "chief", "worker")


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port` for IPv6) -> (host, port), or a one-line error."""
    host, sep, port = str(address).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise KexpError(f"tuner.distributed.address: '{address}' is not host:port, "
                        "e.g. 127.0.0.1:8000")
    return host.strip("[]"), int(port)


def is_address(address: Any) -> bool:
    """True for `host:port` with a port in 1..65535."""
    if not isinstance(address, str):
        return False
    try:
        parse_address(address)
    except KexpError:
        return False
    return True


# logger.tracking_uri: the MLflow stores kexp can log to (MLflow's other schemes need
# drivers kexp does not install, e.g. postgresql://, or are registries, not tracking stores)
TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "databricks")


def is_tracking_uri(v: Any) -> bool:
    """An MLflow tracking URI of a scheme in TRACKING_SCHEMES, or a plain path."""
    if not isinstance(v, str) or not v.strip():
        return False
    parts = urlsplit(v)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.netloc)
    return scheme in TRACKING_SCHEMES or len(scheme) <= 1  # no scheme, or C:\ : a plain path


# data.source: the loaders of kexp.data.SOURCES (which imports this module, hence the copy)
DATA_SOURCES = ("digits", "tfds", "npz", "image_folder", "tfds_text", "text_csv", "diabetes",
                "table", "text_file", "tiny_shakespeare", "parallel_text",
                "tfds_translation", "sort_numbers", "convex_hull")
AUGMENT_ON = ("pipeline", "model")  # data.augment_on: where training images are augmented
# data.standardize (null is none)
STANDARDIZE = ("lower_and_strip_punctuation", "lower", "strip_punctuation", "none")
SCHEDULES = ("constant", "cosine", "step", "warmup")  # schedule.name
# optimizer.name: the optimizers Keras 3 makes by name (or by class name: Adam, RMSprop)
OPTIMIZERS = ("adadelta", "adafactor", "adagrad", "adam", "adamax", "adamw", "ftrl", "lion",
              "muon", "nadam", "rmsprop", "sgd")
# model.activation and model.kernel_initializer, in every family (kexp.models.layers)
ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "gelu", "swish", "tanh", "sigmoid", "selu",
               "mish")
INITIALIZERS = ("glorot_uniform", "glorot_normal", "he_normal", "he_uniform", "lecun_normal",
                "lecun_uniform", "random_normal", "random_uniform", "truncated_normal",
                "orthogonal", "zeros", "ones")


def _positive_int(v: Any) -> bool:
    return is_int(v) and v > 0


def _non_negative_number(v: Any) -> bool:
    return is_number(v) and v >= 0


def _positive_number(v: Any) -> bool:
    return _non_negative_number(v) and v > 0


def _one_of(*options: Any) -> Callable[[Any], bool]:
    return lambda v: any(v == o and type(v) is type(o) for o in options)


def _choice(*options: Any) -> tuple[Callable[[Any], bool], str]:
    """A rule for one of `options`, its expected text 'a, b or c'."""
    names = [str(o).lower() if isinstance(o, bool) else str(o) for o in options]
    expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    return _one_of(*options), expected


def _or_null(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda v: v is None or check(v)


def _non_negative_int(v: Any) -> bool:
    return is_int(v) and v >= 0


def _open_fraction(v: Any) -> bool:
    return is_number(v) and 0 < v < 1


def _below_one(v: Any) -> bool:
    return _non_negative_number(v) and v < 1


def _is_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) or OmegaConf.is_list(v)


def _list_of(item: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """A non-empty list whose every element passes `item`."""
    return lambda v: _is_list(v) and len(v) > 0 and all(item(x) for x in v)


def _sizes(v: Any) -> bool:
    """A layer size or a list of them (an empty list: no such layers)."""
    if _is_list(v):
        return all(_positive_int(x) for x in v)
    return _positive_int(v)


def _image_size(v: Any) -> bool:
    return _is_list(v) and len(v) == 2 and all(_positive_int(x) for x in v)


def _text(v: Any) -> bool:
    """A non-empty string (a name: a column, a feature, an experiment, a file)."""
    return isinstance(v, str) and bool(v)


def _names(v: Any) -> bool:
    """One name or a non-empty list of them."""
    return _text(v) or _list_of(_text)(v)


def _delimiter(v: Any) -> bool:
    # "tab" and "\t" are what a shell lets one type for a tab
    return v in ("tab", "\\t") or (isinstance(v, str) and len(v) == 1 and v not in "\r\n\"")


# a tf.DeviceSpec naming one device: /gpu:0, /cpu:0, /job:worker/task:1/device:GPU:0, ...
_DEVICE = re.compile(r"/?(job:[\w-]+/)?(replica:\d+/)?(task:\d+/)?(device:)?(cpu|gpu|tpu):\d+",
                     re.IGNORECASE)


def _device(v: Any) -> bool:
    return isinstance(v, str) and _DEVICE.fullmatch(v) is not None


def _existing_path(v: Any) -> bool:
    # a missing data file is named here, in half a second, rather than after TensorFlow loads
    return isinstance(v, str) and bool(v) and Path(v).expanduser().exists()


def _usable_dir(v: Any) -> bool:
    """A directory, or a path whose nearest existing parent is a directory kexp may write to."""
    if not isinstance(v, str) or not v:
        return False
    path = Path(v).expanduser().absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _densenet_depth(v: Any) -> bool:
    return is_int(v) and (v in (121, 169, 201, 264) or (v >= 10 and (v - 4) % 6 == 0))


# model knobs that are layer sizes or counts, in whichever families have them
_MODEL_SIZES = ("hidden_units", "dense_units", "filters", "dilations", "kernel_size", "units",
                "layers", "embedding_dim", "embed_dim", "num_heads", "num_blocks",
                "growth_rate", "attention_units", "attention_reduction", "latent_dim",
                "generator_units", "discriminator_units")
_POSITIVE_INT = (_positive_int, "a positive integer")
_FRACTION = (_open_fraction, "a number strictly between 0 and 1")
_RATE = (_below_one, "a number in [0, 1)")


# One rule per key: (check, expected). `validate` checks each key a config has; modules that
# read a key without `validate` having run call `check(key, value)`.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "trainer.epochs": _POSITIVE_INT,
    "trainer.batch_size": _POSITIVE_INT,
    "trainer.steps_per_execution": (lambda v: v == "auto" or _positive_int(v),
                                    "a positive integer or auto"),
    "trainer.seed": (is_int, "an integer"),
    "trainer.verbose": _choice(0, 1, 2),
    "trainer.precision": _choice("float32", "mixed_float16", "mixed_bfloat16"),
    "trainer.jit_compile": _choice(True, False, "auto"),
    "trainer.backup.every_n_steps": (_or_null(_positive_int), "a positive integer or null"),
    "trainer.max_minutes": (_or_null(_positive_number), "a positive number of minutes or null"),
    "trainer.profile_steps": (_or_null(lambda v: _list_of(_positive_int)(v) and len(v) == 2
                                       and v[0] <= v[1]),
                              "two step numbers [first, last], first <= last (e.g. [10, 20]), "
                              "or null"),
    "trainer.overfit_loss": (_or_null(_positive_number), "a positive loss or null"),
    "optimizer.name": (lambda v: isinstance(v, str) and v.lower() in OPTIMIZERS,  # Adam too
                       f"a Keras optimizer: {', '.join(OPTIMIZERS)}"),
    "optimizer.lr": (_positive_number, "a positive number"),
    "optimizer.weight_decay": (_or_null(_non_negative_number), "a number >= 0 or null"),
    "optimizer.clipnorm": (_or_null(_positive_number), "a positive number or null"),
    "optimizer.clipvalue": (_or_null(_positive_number), "a positive number or null"),
    "optimizer.momentum": _RATE,
    "optimizer.beta_1": _RATE,
    "optimizer.beta_2": _RATE,
    "optimizer.rho": _RATE,
    "optimizer.initial_accumulator_value": (_non_negative_number, "a number >= 0"),
    "schedule.name": _choice(*SCHEDULES),
    "schedule.warmup_epochs": (_non_negative_int, "an integer >= 0"),
    "schedule.min_lr_ratio": (lambda v: _non_negative_number(v) and v <= 1, "a number in [0, 1]"),
    "schedule.start_ratio": (lambda v: _positive_number(v) and v <= 1, "a number in (0, 1]"),
    "schedule.gamma": (_positive_number, "a positive number"),
    "schedule.milestones": (_list_of(_positive_int),
                            "a list of positive epoch numbers, e.g. [30, 60]"),
    "strategy.name": _choice("auto", "cpu", "one_device", "mirrored", "multi_worker", "tpu"),
    "strategy.device": (_device, "a device such as /gpu:0 or /cpu:0"),
    "strategy.devices": (_or_null(_list_of(_device)),
                         "a list of devices such as [/gpu:0, /gpu:1], or null for every GPU"),
    "strategy.cross_device_ops": _choice("auto", "nccl", "hierarchical_copy",
                                         "reduce_to_one_device"),
    "strategy.virtual_cpus": (_non_negative_int, "an integer >= 0 (0: off)"),
    "strategy.cluster": (_or_null(_list_of(is_address)),
                         "a list of host:port, e.g. [10.0.0.1:12345,10.0.0.2:12345], or null"),
    "strategy.task_index": (_or_null(_non_negative_int), "an integer >= 0 or null"),
    "strategy.communication": _choice("auto", "ring", "nccl"),
    "strategy.tpu": (_or_null(lambda v: isinstance(v, str)),
                     "a TPU name or grpc:// address, or \"\" for the local one"),
    "logger.backend": _choice("mlflow", "none"),
    "logger.tracking_uri": (_or_null(is_tracking_uri),
                            "an MLflow store: sqlite:///<file>, file:<dir>, http://<host>, "
                            "https://<host>, databricks or a plain path (null: "
                            "$MLFLOW_TRACKING_URI, else sqlite:///<paths.log_dir>/mlflow.db)"),
    "logger.experiment": (_or_null(_text),
                          "an experiment name (quote digits: logger.experiment=\"'2024'\")"),
    "logger.log_model": (_or_null(_one_of(True, False)), "true or false"),
    "logger.register_model": (_or_null(_text), "a model name for MLflow's model registry, "
                              "or null (not registered)"),
    "logger.tensorboard.histograms": (_one_of(True, False), "true or false"),
    "data.augment_on": _choice(*AUGMENT_ON),
    "data.augment.crop_padding": (_non_negative_int, "an integer >= 0 (0: no crop)"),
    "model.dropout": _RATE,
    "model.l1": (_non_negative_number, "a number >= 0"),
    "model.l2": (_non_negative_number, "a number >= 0"),
    "model.width": (_positive_number, "a positive number"),
    "model.recurrent_dropout": _RATE,
    "model.leaky_slope": (_non_negative_number, "a number >= 0 (the LeakyReLU slope below 0)"),
    # han: the sentences per document it reads, which data.sentences follows; before the data
    # keys, so that a bad model.sentences is named as itself, not as data.sentences
    "model.sentences": (_positive_int, "a positive integer (sentences per document)"),
    **{f"model.{key}": (_sizes, "a positive integer or a list of positive integers")
       for key in _MODEL_SIZES},
    # null: gpt's is 4 * embed_dim (the transformer's must be set: its rule below)
    "model.ff_dim": (_or_null(_positive_int), "a positive integer or null"),
    # null: dcgan follows the image size (the families with a fixed set have rules below)
    "model.depth": (_or_null(_positive_int), "a positive integer"),
    "model.activation": _choice(*ACTIVATIONS),
    "model.kernel_initializer": _choice(*INITIALIZERS),
    # image families: channel attention; rnn_seq2seq: the decoder's (its own rule below)
    "model.attention": _choice("none", "se", "cbam", "bahdanau", "luong_dot", "luong_general"),
    "callbacks.early_stopping.patience": (_non_negative_int, "an integer >= 0"),
    "callbacks.early_stopping.min_delta": (_non_negative_number, "a number >= 0"),
    "callbacks.checkpoint.mode": _choice("max", "min", "auto"),
    "callbacks.early_stopping.mode": _choice("max", "min", "auto"),
    "callbacks.reduce_lr.mode": _choice("max", "min", "auto"),
    "callbacks.reduce_lr.patience": (_non_negative_int, "an integer >= 0"),
    "callbacks.reduce_lr.factor": _FRACTION,
    "callbacks.reduce_lr.min_lr": (_non_negative_number, "a number >= 0"),
    "callbacks.csv_logger.filename": (_text, "a file name, e.g. history.csv"),
    # the data keys whose value alone tells; files are read (and checked) by the loaders
    "data.source": _choice(*DATA_SOURCES),
    "data.path": (_existing_path, "a path that exists"),
    "data.test_path": (_or_null(_existing_path), "a path that exists, or null"),
    "data.vocabulary_file": (_or_null(_existing_path), "a file that exists, or null"),
    "data.val_fraction": _FRACTION,
    "data.test_fraction": _FRACTION,
    "data.subset": (_or_null(_positive_int), "a positive integer or null"),
    "data.shuffle_buffer": _POSITIVE_INT,
    "data.scale": (lambda v: v == "auto" or _positive_number(v), "a positive number or auto"),
    "data.mean": (_or_null(_list_of(is_number)),
                  "a list of numbers, one per channel (e.g. [0.5, 0.5, 0.5]), or null"),
    "data.std": (_or_null(_list_of(_positive_number)),
                 "a list of positive numbers, one per channel, or null"),
    "data.image_size": (_image_size, "two positive integers [H, W]"),
    "data.channels": (_one_of(1, 3), "1 (grey) or 3 (RGB)"),
    "data.sequence_length": _POSITIVE_INT,
    "data.sentences": (_or_null(_positive_int), "a positive integer (sentences per document, "
                       "for model=han) or null (flat token ids)"),
    "data.sentence_length": _POSITIVE_INT,
    "data.max_tokens": (_or_null(lambda v: is_int(v) and v >= 3),
                        "an integer >= 3 (ids 0 and 1 are padding and OOV) or null"),
    "data.standardize": (_or_null(_one_of(*STANDARDIZE)),
                         f"one of {', '.join(STANDARDIZE)} (or null: none)"),
    "data.text_features": (_or_null(_names), "a list of text features, or null"),
    "data.label_feature": (_text, "a feature name"),
    "data.text_column": (_text, "a column name"),
    "data.label_column": (_text, "a column name"),
    "data.target": (_names, "a column name or a list of column names"),
    # tokens: a language model's or a translation's (their data sources refuse other tasks')
    "data.targets": _choice("classes", "real", "tokens"),
    "data.columns": (_or_null(_list_of(_text)), "a list of column names, or null for all"),
    "data.delimiter": (_delimiter, "one character such as ',' ';' '|', or tab"),
    "data.missing": _choice("error", "drop", "impute"),
    "data.tokens": _choice("char", "word"),
    "data.context": _POSITIVE_INT,
    "data.epoch_tokens": (_or_null(_positive_int),
                          "a positive integer or null (the training split's token count)"),
    "data.lowercase": (lambda v: isinstance(v, bool), "true or false"),
    "data.punctuation": _choice("split", "strip", "keep"),
    "data.fingerprint": (lambda v: isinstance(v, bool), "true or false"),
    "data.normalize": _choice("nfc", "none"),
    "data.reverse": (lambda v: isinstance(v, bool), "true or false"),
    "data.max_pairs": (_or_null(_positive_int), "a positive integer or null"),
    "data.source_language": (_or_null(_text), "a feature (language) of the data set, or null"),
    "data.target_language": (_or_null(_text), "a feature (language) of the data set, or null"),
    "data.max_length": _POSITIVE_INT,
    # point sets (sort_numbers, convex_hull); the source asks convex_hull for >= 3
    "data.points": (lambda v: is_int(v) and v >= 2, "an integer >= 2 (convex_hull: >= 3)"),
    "data.train_examples": _POSITIVE_INT,
    "data.val_examples": _POSITIVE_INT,
    "data.test_examples": _POSITIVE_INT,
    "paths.log_dir": (_usable_dir, "a directory kexp can create and write to"),
    "run_name": (_or_null(lambda v: isinstance(v, str)),
                 "a string or null (quote digits: run_name=\"'2024'\")"),
    "batch_size": (_or_null(_positive_int), "a positive integer or null"),  # kexp.eval
    "unsafe_load": (_one_of(True, False), "true or false"),  # kexp.eval
    "tuner.name": _choice("random", "bayesian", "hyperband", "grid"),
    "tuner.distributed.role": (_one_of(*ROLES), ", ".join(ROLES)),
    "tuner.distributed.address": (is_address, "host:port, e.g. 127.0.0.1:8000"),
    # keras-tuner takes an id with 'chief' in it for the chief's
    "tuner.distributed.worker_id": (_or_null(lambda v: _text(v) and "chief" not in v),
                                    "a name without 'chief' in it, or null"),
    "tuner.direction": (_one_of("max", "min"), "max or min"),
    "tuner.max_trials": _POSITIVE_INT,
    "tuner.max_failed_trials": _POSITIVE_INT,
    "tuner.max_epochs": _POSITIVE_INT,
    "tuner.factor": (lambda v: is_int(v) and v >= 2, "an integer >= 2"),
    "tuner.hyperband_iterations": _POSITIVE_INT,
    "tuner.num_initial_points": (_or_null(_positive_int), "a positive integer or null"),
    "tuner.alpha": (_positive_number, "a positive number (the Gaussian process' noise)"),
    "tuner.beta": (_non_negative_number, "a number >= 0 (the exploration weight)"),
    "tuner.top_k": _POSITIVE_INT,
    "tuner.seed": (_or_null(is_int), "an integer or null"),
    "tuner.directory": (_usable_dir, "a directory kexp can create and write to"),
}

# The rules of a kexp model family (`model_family`), where its keys differ from the others'
FAMILY_RULES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "alexnet": {
        "model.variant": _choice("imagenet", "cifar"),
        "model.resize_to": (_non_negative_int, "0 (never resize) or an image size such as 224"),
    },
    "cnn": {"model.padding": _choice("same", "valid"), "model.pooling": _choice("max", "avg")},
    "densenet": {
        "model.depth": (_densenet_depth, "121, 169, 201, 264 (ImageNet) or 6n+4 >= 10 for "
                                         "small images (40, 100, 190, 250, ...)"),
        "model.compression": (lambda v: _positive_number(v) and v <= 1, "a number in (0, 1]"),
    },
    "mobilenet": {
        "model.version": _choice(1, 2),
        "model.alpha": (_positive_number, "a positive width multiplier such as 0.5, 0.75, 1.0 "
                                          "or 1.4"),
        "model.first_stride": (_one_of(1, 2), "1 (small images) or 2 (the papers')"),
    },
    "resnet": {
        "model.depth": (_one_of(20, 32, 44, 56, 110, 18, 34, 50, 101, 152, 9),
                        "20, 32, 44, 56, 110 (CIFAR), 18, 34, 50, 101, 152 (ImageNet) or 9 "
                        "(ResNet-9)"),
        "model.block_version": _choice("v1", "v2"),
        "model.shortcut": _choice("auto", "zero_pad", "projection"),
    },
    "rnn": {"model.cell": _choice("simple", "lstm", "gru"),
            "model.pooling": _choice("last", "attention", "none")},
    "tcn": {"model.pooling": _choice("last", "mean", "max", "none"),
            "model.kernel_size": (lambda v: is_int(v) and v >= 2,
                                  "an integer >= 2 (a dilated conv)")},
    "transformer": {"model.positional": _choice("learned", "sinusoidal"),
                    "model.pooling": _choice("mean", "max", "cls", "none"),
                    "model.ff_dim": _POSITIVE_INT},
    "rnn_seq2seq": {"model.cell": _choice("gru", "lstm"),
                    "model.attention": _choice("none", "bahdanau", "luong_dot", "luong_general")},
    "transformer_seq2seq": {"model.num_layers": _POSITIVE_INT,
                            "model.positional": _choice("learned", "sinusoidal"),
                            "model.shared_embeddings": (lambda v: isinstance(v, bool),
                                                        "true or false"),
                            "model.ff_dim": _POSITIVE_INT},
    "pointer_net": {"model.cell": _choice("gru", "lstm")},
    "gpt": {"model.num_layers": _POSITIVE_INT,
            "model.ff_dim": (_or_null(_positive_int), "a positive integer, or null for 4 * "
                                                     "embed_dim"),
            "model.pooling": _choice("none", "last", "mean")},
    "vgg": {"model.depth": _choice(11, 13, 16, 19)},
    # 64-pixel images take 4 stages, 256 pixels 6
    "dcgan": {"model.depth": (_or_null(lambda v: _positive_int(v) and v <= 6),
                              "an integer from 1 to 6, or null to follow the image size")},
}


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    # an empty mapping (tags: {}) is a leaf of its own, so `tags=abc` is still type-checked
    if isinstance(node, dict) and (node or not prefix):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def _get(tree: Any, dotted: str) -> Any:
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        if not isinstance(tree, dict):
            if tree is not None and not _is_interpolation(tree):
                # `logger=none` where logger is a mapping (no config group to pick from)
                where = ".".join(parts[:i])
                raise KexpError(f"{where}: expected a mapping of settings (e.g. {dotted}=...), "
                                f"got {tree!r}")
            return None
        if part not in tree:
            return None
        tree = tree[part]
    return tree


def _is_interpolation(v: Any) -> bool:
    return isinstance(v, str) and "${" in v


def _same_kind(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return is_int(value)
    if isinstance(default, float):
        return is_number(value)
    if isinstance(default, list):
        return isinstance(value, list)
    if isinstance(default, dict):
        return isinstance(value, dict)
    return True  # strings may be replaced by anything the consumer accepts (e.g. auto -> true)


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, list):
        return "a list, e.g. [1, 2]"
    if isinstance(default, dict):
        return "a mapping"
    return type(default).__name__
