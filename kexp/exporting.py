"""`python -m kexp.export`: a finished run's model as a TensorFlow SavedModel or a TFLite file,
checked against the Keras model on the run's own test split.

The data come from `kexp.data.load` with the run's config.yaml, as `kexp.eval` rebuilds them;
the served function calls the bundle's own `preprocess` (images: data.scale and data.mean/std;
tables: a cast; text: the run's TextVectorization, re-adapted on the same training split, so
the ids of vocabulary.txt), so raw inputs go through exactly what kexp trained on.

TFLite for text takes token ids, not strings: standardizing and splitting strings needs
TensorFlow ops outside TFLite's builtins (the Flex delegate: StringLower, StaticRegexReplace,
StringSplitV2), which TFLite runtimes without the select-ops library (the Python interpreter
that ships with TensorFlow 2.21 among them) cannot run. The ids are those of the run's
vocabulary.txt (0 pads, 1 is a word outside it), copied to export/vocabulary.txt beside
export/text_input.json, which says the rest a host needs (sequence length, standardize mode).
Importing this module imports TensorFlow.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from omegaconf import OmegaConf

# TF 2.21 dropped the public alias tf.lite.ConverterError
from tensorflow.lite.python.convert_phase import ConverterError

from kexp import data as datasets
from kexp import run_dir
from kexp.environment import native_stderr_held
from kexp.errors import KexpError
from kexp.tasks import make_task

EXPORT_DIR = "export"
IDS_SIGNATURE = "serve_ids"  # text: token ids in, as its TFLite file takes them
EXPORTABLE = ("classification", "regression")
# max |exported - Keras| allowed over the test split (probabilities; regression: times the
# largest |prediction|). Unquantized, the same float32 graph differs only in the order of its
# sums (<= 5e-7 seen). float16 weights keep ~3 significant digits (4e-4 seen, digits cnn);
# dynamic range quantization rounds weights to 8 bits and activations per batch (1.3e-2 seen,
# one digit in 360 changing class). The bounds leave that room ~10x; beyond them the export
# is wrong, not rounded.
TOLERANCE = {None: 1e-4, "float16": 2e-2, "dynamic": 1e-1}
_BATCH = 256


@dataclass(frozen=True)
class Exported:
    """One file (or SavedModel folder) written, and how closely it follows the Keras model."""

    path: Path
    size_bytes: int
    examples: int
    max_abs_diff: float  # over every predicted probability (regression: prediction)
    argmax_agreement: float | None  # share of test examples with the same class; None: regression
    tolerance: float
    batch: int | None = None  # a TFLite file's fixed batch size (recurrent models: 1)

    def line(self) -> str:
        """What `python -m kexp.export` prints for it."""
        same = "" if self.argmax_agreement is None else \
            f" same_class={self.argmax_agreement:.4f}"
        fixed = "" if self.batch is None else f" (batch {self.batch})"
        return (f"{self.path}{fixed}  {self.size_bytes / 1024:.1f} KiB  "
                f"test examples={self.examples}"
                f" max_abs_diff={self.max_abs_diff:.2e} (tolerance {self.tolerance:.3g}){same}")


class Served:
    """The model behind the run's own preprocessing: raw inputs in, predictions out, written
    with Keras' ExportArchive (`tf.saved_model.save` of a tf.Module holding a Keras 3 model
    writes a SavedModel whose TFLite conversion reads its weights as zeros)."""

    def __init__(self, model: Any, preprocess: Any, classes: bool) -> None:
        self.model, self.preprocess, self.classes = model, preprocess, classes

    def outputs(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        """Raw inputs -> the run's preprocessing -> the model's predictions (and classes)."""
        return self.of_model_inputs(self.preprocess(x))

    def of_model_inputs(self, x: tf.Tensor) -> dict[str, tf.Tensor]:
        """What the model reads (text: token ids) -> its predictions (and classes)."""
        predictions = tf.cast(self.model(x, training=False), tf.float32)
        if not self.classes:
            return {"predictions": predictions}
        return {"predictions": predictions,
                "class_id": tf.argmax(predictions, axis=-1, output_type=tf.int32)}

    def save(self, path: Path, raw_x: np.ndarray, ids: np.ndarray, batch: int | None = None
             ) -> None:
        """Write the SavedModel (replacing one already at `path`): serving_default takes the
        source's own dtype (images also get serve_uint8 and serve_float32); text also
        serve_ids, the token ids its TFLite file reads. `batch`: a fixed batch size."""
        import keras

        archive = keras.export.ExportArchive()
        archive.track(self.model)
        if isinstance(self.preprocess, tf.Module):  # text: the lookup table of its vocabulary
            archive.track(self.preprocess)
        raw = tf.as_dtype(raw_x.dtype)
        dtypes = [raw]
        if raw != tf.string and raw_x.ndim == 4:  # images
            dtypes += [d for d in (tf.uint8, tf.float32) if d != raw]
        for i, dtype in enumerate(dtypes):
            archive.add_endpoint("serving_default" if i == 0 else f"serve_{dtype.name}",
                                 self.outputs, input_signature=[
                                     tf.TensorSpec([batch, *raw_x.shape[1:]], dtype,
                                                   name="inputs")])
        if raw == tf.string:
            archive.add_endpoint(IDS_SIGNATURE, self.of_model_inputs, input_signature=[
                tf.TensorSpec([batch, *ids.shape[1:]], tf.int32, name="inputs")])
        shutil.rmtree(path, ignore_errors=True)
        tf_log = logging.getLogger("tensorflow")
        level = tf_log.level
        tf_log.setLevel(logging.WARNING)  # "Assets written to", on stdout under Hydra
        try:
            archive.write_out(str(path), verbose=False)
        finally:
            tf_log.setLevel(level)


def export(folder: str | Path, fmt: str, quantize: str | None = None,
           batch_size: int | None = None, unsafe_load: bool = False) -> list[Exported]:
    """Export the finished run in `folder` and check it against its Keras model.

    Args:
        folder: a finished run's directory (config.yaml, model.keras).
        fmt: "saved_model" (DIR/export/saved_model/) or "tflite" (DIR/export/model.tflite,
            model-<quantize>.tflite when quantized).
        quantize: None, "dynamic" (8-bit weights, dynamic-range) or "float16"; TFLite only.
        batch_size: the test split's batch size; None: the run's own.
        unsafe_load: load a model.keras with a Lambda layer (a file you trust only).

    Returns:
        What was written, with its size and its agreement with the Keras model on the test
        split; a difference above the tolerance raises KexpError.
    """
    from kexp.models import load_model

    folder = run_dir.finished_run(folder)
    cfg = OmegaConf.load(folder / run_dir.CONFIG_FILE)
    if fmt not in ("saved_model", "tflite"):
        raise KexpError(f"format: {fmt!r} is not valid; expected one of saved_model, tflite")
    if quantize not in TOLERANCE or (quantize is not None and fmt != "tflite"):
        raise KexpError(f"quantize: {quantize!r} is not valid; expected dynamic or float16, "
                        f"with format=tflite (or null)")
    # task=NAME is the module of its class, kexp.tasks.<NAME>[.<class>]; a user's own task:
    # its _target_
    target = str(OmegaConf.select(cfg, "task._target_", default="kexp.tasks.classification"))
    kind = target.split(".")[2] if target.startswith("kexp.tasks.") else target
    if kind not in EXPORTABLE:
        raise KexpError(f"run_dir: '{folder}' is a task={kind} run; kexp.export takes "
                        f"{' and '.join(f'task={k}' for k in EXPORTABLE)} runs only")
    task = make_task(cfg)
    model = load_model(folder / run_dir.MODEL_FILE, safe_mode=not unsafe_load, compile=False)
    data = datasets.load(task.data_config(cfg.data),
                         global_batch_size=batch_size or cfg.trainer.batch_size,
                         seed=cfg.trainer.seed)
    task.check_data(data.spec, cfg.data.name)
    if data.preprocess is None or data.raw_test is None:
        raise KexpError(f"data: {data.spec.name} holds neither images, table rows nor "
                        f"texts; kexp.export serves those only")
    expected, ids, labels = _keras_side(model, data.test)
    served = Served(model, data.preprocess, classes=kind == "classification")
    raw_x, raw_y = _raw(data.raw_test)
    if not np.array_equal(raw_y.reshape(labels.shape), labels):
        raise RuntimeError("the raw test split is not in the order of the test split")
    out = folder / EXPORT_DIR
    out.mkdir(exist_ok=True)
    text = raw_x.dtype.kind in "OSU"
    if fmt == "saved_model":
        path = out / "saved_model"
        served.save(path, raw_x, ids)
        got = _predict_saved_model(path, raw_x)
        return [_check(path, _size(path), expected, got, classes=served.classes)]
    content, batch = _convert(served, raw_x, ids, IDS_SIGNATURE if text else "serving_default",
                              quantize)
    if text:  # the host turns strings into ids: see the module's docstring
        _write_text_input(out, cfg, data.vocabulary)
    path = out / ("model.tflite" if quantize is None else f"model-{quantize}.tflite")
    path.write_bytes(content)
    got = _predict_tflite(path, ids if text else raw_x, batch or _BATCH)
    return [_check(path, path.stat().st_size, expected, got, classes=served.classes,
                   tolerance=TOLERANCE[quantize], batch=batch)]


def _keras_side(model: Any, test: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Keras model's predictions on the test split, its inputs and its labels."""
    xs, ys, predictions = [], [], []
    for x, y in test:
        xs.append(x.numpy())
        ys.append(y.numpy())
        predictions.append(np.asarray(model(x, training=False), dtype=np.float32))
    return np.concatenate(predictions), np.concatenate(xs), np.concatenate(ys)


def _raw(raw_test: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for x, y in raw_test.batch(_BATCH):
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _predict_saved_model(path: Path, raw_x: np.ndarray) -> np.ndarray:
    """The reloaded SavedModel's serving_default on the raw test inputs."""
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return np.concatenate([serve(inputs=tf.constant(raw_x[i:i + _BATCH]))["predictions"].numpy()
                           for i in range(0, len(raw_x), _BATCH)])


def _convert(served: Served, raw_x: np.ndarray, ids: np.ndarray, signature: str,
             quantize: str | None) -> tuple[bytes, int | None]:
    """The TFLite file's bytes and its fixed batch size (None: any). From a SavedModel:
    TFLiteConverter.from_concrete_functions reads Keras 3 weights as zeros. Any batch size
    first; recurrent layers (LSTM, GRU) unroll into TensorList ops that TFLite's builtins
    take only at a fixed batch size, so those models take one example at a time."""
    for batch in (None, 1):
        with tempfile.TemporaryDirectory(prefix="kexp-export-") as scratch:
            served.save(Path(scratch) / "saved_model", raw_x, ids, batch)
            converter = tf.lite.TFLiteConverter.from_saved_model(
                str(Path(scratch) / "saved_model"), signature_keys=[signature])
            if quantize is not None:
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "float16":
                converter.target_spec.supported_types = [tf.float16]
            try:
                if batch is not None:
                    return converter.convert(), batch
                with native_stderr_held(replay_on_error=False):  # a failed try's MLIR errors: pages
                    return converter.convert(), batch
            except ConverterError:
                if batch is not None:
                    raise
    raise AssertionError("unreachable")


def _predict_tflite(path: Path, inputs: np.ndarray, batch: int) -> np.ndarray:
    """The TFLite file run by TensorFlow's interpreter, one batch of the test split at a time."""
    with warnings.catch_warnings():  # its deprecation notice: LiteRT runs the same file
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_path=str(path))
    (signature,) = interpreter.get_signature_list()  # the one converted
    runner = interpreter.get_signature_runner(signature)
    return np.concatenate([runner(inputs=inputs[i:i + batch])["predictions"]
                           for i in range(0, len(inputs), batch)])


def _check(path: Path, size: int, expected: np.ndarray, got: np.ndarray, classes: bool,
           tolerance: float = TOLERANCE[None], batch: int | None = None) -> Exported:
    got = got.reshape(expected.shape)
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    same = float(np.mean(got.argmax(-1) == expected.argmax(-1))) if classes else None
    if not classes:  # real targets in their own units (diabetes: 25..346): float32's steps
        tolerance *= max(1.0, float(np.max(np.abs(expected))) if expected.size else 1.0)
    found = Exported(path, size, len(expected), diff, same, tolerance, batch)
    if not diff <= tolerance:  # NaN too
        raise KexpError(f"{path.name}: predictions differ from the Keras model's by up to "
                        f"{diff:.3g} on the test split (tolerance {tolerance:g})")
    return found


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def _write_text_input(out: Path, cfg: Any, vocabulary: list[str]) -> None:
    """What a host needs to make the TFLite model's token ids from a text: text_input.json
    and, beside it, the vocabulary the ids index (the run's vocabulary.txt, adapted again)."""
    from kexp.data.text import save_vocabulary

    save_vocabulary(vocabulary, out / run_dir.VOCABULARY_FILE)
    data = cfg.data
    (out / "text_input.json").write_text(json.dumps({
        "inputs": "int32 token ids, (batch, sequence_length)",
        "vocabulary": run_dir.VOCABULARY_FILE, "first_word_id": 2,
        "padding_id": 0, "out_of_vocabulary_id": 1,
        "sequence_length": data.get("sequence_length"),
        "standardize": data.get("standardize"), "split": "whitespace"}, indent=2) + "\n")
