"""Neural style transfer (Gatys, Ecker & Bethge, 2016, "Image Style Transfer Using
Convolutional Neural Networks"): one image is optimised until an ImageNet VGG sees in it the
content (deep features) of one picture and the style (Gram matrices of features at several
depths) of another. `python -m kexp.stylize` (kexp/cli/stylize.py) runs `plan` then `run`.

The losses are those of the TensorFlow style-transfer tutorial (the same layers, Gram matrices
averaged over positions, mean squared differences, total variation of the image on a [0, 1]
scale), so its loss weights carry over: content_weight=1e4, style_weight=1e-2, tv_weight=30.

TensorFlow and Keras are imported inside the functions that need them, not at module level:
the checks (`check_settings`, `resolve_weights`, `load_image`, `plan`) run before TensorFlow
loads, so a typo or an offline weights=imagenet fails in a second instead of after a
ten-second TensorFlow import.
"""

from __future__ import annotations

import csv
import os
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kexp.config import is_int, is_number
from kexp.errors import KexpError, TrainingFailed

if TYPE_CHECKING:
    import keras
    import tensorflow as tf
    from omegaconf import DictConfig

    from kexp.tracking.tracker import Tracker

NETWORKS = ("vgg16", "vgg19")
OPTIMIZERS = ("adam", "lbfgs")
INITS = ("content", "noise")
CONTENT_LAYERS = ("block5_conv2",)
STYLE_LAYERS = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
# convs per block: the layer names are known without building the network (checked before
# TensorFlow loads)
_CONVS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
# four 2x2 poolings come before block 5: a shorter side leaves its layers no positions
MIN_SIDE = 16
# the columns of the history, of losses.csv and the names of the metrics in MLflow; each part
# is already multiplied by its weight, so total_loss is their sum
LOSSES = ("total_loss", "content_loss", "style_loss", "tv_loss")
# where keras.applications downloads the ImageNet weights from
WEIGHTS_HOST = ("storage.googleapis.com", 443)
PROBE_TIMEOUT_S = 3.0


@dataclass
class StyleTransferResult:
    """What `stylize` returns.

    Attributes:
        image: the stylised image, uint8, (height, width, 3) RGB.
        history: per step, each of `LOSSES` (weighted); entry k is the loss of the image after
            k updates, so entry 0 is the starting image's and the last the result's.
    """

    image: np.ndarray
    history: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in LOSSES})

    @property
    def steps(self) -> int:
        """The updates made (L-BFGS may stop before `steps` once it has converged)."""
        return len(self.history["total_loss"]) - 1


@dataclass
class StylizeJob:
    """One `python -m kexp.stylize` run, checked and loaded (`plan`), before TensorFlow."""

    content: np.ndarray  # float32 (h, w, 3) in [0, 255], already resized
    style: np.ndarray
    settings: dict[str, Any]  # keyword arguments of `stylize` besides the images
    out: Path
    run_name: str
    params: dict[str, Any]  # the config as logged to MLflow
    tags: dict[str, str]


def layer_names(network: str) -> list[str]:
    """The conv and pooling layers of `network` (vgg16 or vgg19) with include_top=False."""
    names = []
    for block, convs in enumerate(_CONVS[network], start=1):
        names += [f"block{block}_conv{i}" for i in range(1, convs + 1)] + [f"block{block}_pool"]
    return names


def weights_file_name(network: str) -> str:
    """The file keras.applications keeps `network`'s ImageNet weights (no top) in."""
    return f"{network}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def check_settings(network: str = "vgg16", content_layers: Sequence[str] = CONTENT_LAYERS,
                   style_layers: Sequence[str] = STYLE_LAYERS, image_size: int = 256,
                   steps: int = 200, optimizer: str = "adam", learning_rate: float = 5.0,
                   content_weight: float = 1e4, style_weight: float = 1e-2,
                   tv_weight: float = 30.0, seed: int = 0, init: str = "content") -> None:
    """Raise a one-line KexpError naming the first argument that is not valid (no TensorFlow).

    Args: as `stylize`.
    """
    def expect(key: str, ok: bool, what: str, value: Any) -> None:
        if not ok:
            raise KexpError(f"{key}: {value!r} is not valid; expected {what}")

    expect("network", network in NETWORKS, " or ".join(NETWORKS), network)
    expect("optimizer", optimizer in OPTIMIZERS, " or ".join(OPTIMIZERS), optimizer)
    expect("init", init in INITS, " or ".join(INITS), init)
    expect("steps", is_int(steps) and steps >= 1, "a positive integer", steps)
    expect("image_size", is_int(image_size) and image_size >= MIN_SIDE,
           f"an integer >= {MIN_SIDE} (the longer side in pixels)", image_size)
    expect("learning_rate", is_number(learning_rate) and learning_rate > 0,
           "a positive number", learning_rate)
    for key, value in (("content_weight", content_weight), ("style_weight", style_weight),
                       ("tv_weight", tv_weight)):
        expect(key, is_number(value) and value >= 0, "a number >= 0", value)
    expect("seed", is_int(seed), "an integer", seed)
    valid = layer_names(network)
    for key, layers in (("content_layers", content_layers), ("style_layers", style_layers)):
        expect(key, isinstance(layers, Sequence) and not isinstance(layers, str),
               f"a list of layer names, e.g. [{valid[0]}]", layers)
        for name in layers:
            if name not in valid:
                raise KexpError(f"{key}: {name!r} is not a layer of {network}; expected some "
                                f"of {', '.join(valid)}")
    if not content_layers and not style_layers:
        raise KexpError("content_layers and style_layers are both empty; name at least one "
                        f"layer, e.g. content_layers=[{CONTENT_LAYERS[0]}]")


def keras_models_dir() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME/models, else ~/.keras/models (Keras
    falls back to /tmp/.keras when the home directory is not writable)."""
    home = os.environ.get("KERAS_HOME")
    if home is None:
        base = os.path.expanduser("~")
        home = os.path.join(base if os.access(base, os.W_OK) else "/tmp", ".keras")
    return Path(home).expanduser() / "models"


def download_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the weights' host (or to the https proxy urllib would use)
    opens within `timeout` seconds.

    The connect runs in a daemon thread because name resolution does not honour socket
    timeouts: an unanswered DNS query alone can take longer than the whole probe may."""
    host, port = WEIGHTS_HOST
    proxy = urllib.request.getproxies().get("https")
    if proxy and not urllib.request.proxy_bypass(host):
        parts = urllib.parse.urlsplit(proxy if "//" in proxy else f"http://{proxy}")
        host, port = parts.hostname or host, parts.port or (443 if parts.scheme == "https" else 80)
    reached: list[bool] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                reached.append(True)
        except OSError:
            reached.append(False)

    thread = threading.Thread(target=connect, daemon=True, name="kexp-weights-probe")
    thread.start()
    thread.join(timeout + 0.5)
    return bool(reached) and reached[0]


def resolve_weights(network: str, weights: str | Path | None) -> str | None:
    """What to hand keras.applications as `weights`, failing in seconds when it cannot work.

    Offline, Keras would try to download the ImageNet weights and hang or fail with a long
    traceback; so a cached file is passed by its path (Keras then never downloads), and
    without one a connection probe decides, before TensorFlow loads.

    Args:
        network: "vgg16" or "vgg19".
        weights: "imagenet", the path of a local weights file (Keras' notop .h5), or None
            for an untrained network (random weights: only for tests and timing).

    Returns:
        A file path, "imagenet" (Keras downloads into its cache), or None.
    """
    if weights is None:
        return None
    name = weights_file_name(network)
    if str(weights) == "imagenet":
        for folder in (keras_models_dir(), Path(tempfile.gettempdir()) / ".keras" / "models"):
            if (folder / name).is_file():
                return str(folder / name)
        if download_reachable():
            return "imagenet"
        raise KexpError(
            f"weights: imagenet needs {name}, which is not in {keras_models_dir()} and "
            f"{WEIGHTS_HOST[0]} cannot be reached to download it; pass weights=FILE with a "
            f"local copy of {name}, put the file into {keras_models_dir()}/, or use "
            "weights=null for an untrained network")
    path = Path(str(weights)).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise KexpError(f"weights: '{weights}' {what}; pass a local {name}, weights=imagenet "
                        "or weights=null")
    return str(path)


def load_image(image: str | Path | np.ndarray, key: str, size: int) -> np.ndarray:
    """An image as float32 (height, width, 3) RGB in [0, 255], its longer side `size` pixels.

    Args:
        image: a file Pillow can read, or an array (h, w, 3) or (h, w) of pixel values.
        key: the config key it came from, named in errors.
        size: the longer side after resizing (the aspect ratio is kept).
    """
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
            raise KexpError(f"{key}: an array of shape {image.shape} is not an image; "
                            "expected (height, width, 3)")
        picture = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB")
    else:
        if not isinstance(image, (str, Path)) or not str(image):
            raise KexpError(f"{key}: {image!r} is not valid; expected an image file")
        path = Path(image).expanduser()
        if not path.is_file():
            what = "is a directory" if path.is_dir() else "does not exist"
            raise KexpError(f"{key}: '{image}' {what}; expected an image file")
        try:
            with Image.open(path) as opened:
                picture = opened.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise KexpError(f"{key}: '{image}' is not an image Pillow can read ({reason})") \
                from None
    width, height = picture.size
    scale = size / max(width, height)
    new = (max(1, round(width * scale)), max(1, round(height * scale)))
    if min(new) < MIN_SIDE:
        raise KexpError(f"image_size: {size} makes {key} {new[0]}x{new[1]} pixels; VGG needs "
                        f"at least {MIN_SIDE} on the shorter side: raise image_size")
    if new != picture.size:
        picture = picture.resize(new, Image.Resampling.LANCZOS)
    return np.asarray(picture, dtype=np.float32)


def build_extractor(network: str = "vgg16", weights: str | None = "imagenet",
                    layers: Sequence[str] = (*STYLE_LAYERS, *CONTENT_LAYERS)) -> keras.Model:
    """A frozen VGG (include_top=False, any image size) returning the features of `layers`.

    Args:
        network: "vgg16" or "vgg19".
        weights: "imagenet", a weights file's path, or None (random weights). Pass it through
            `resolve_weights` first: offline, "imagenet" would make Keras try to download.
        layers: the layers whose outputs the model returns (duplicates are dropped).

    Returns:
        A `keras.Model` from a batch of images preprocessed by `preprocess(network)` (BGR, the
        ImageNet mean subtracted) to a dict {layer name: (batch, h, w, channels)}.
    """
    import keras

    application = {"vgg16": keras.applications.VGG16, "vgg19": keras.applications.VGG19}
    if network not in application:
        raise KexpError(f"network: {network!r} is not valid; expected one of {', '.join(NETWORKS)}")
    try:
        base = application[network](include_top=False, weights=weights, input_shape=(None, None, 3))
    except (OSError, ValueError) as exc:  # a corrupt file, or weights of another network
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise KexpError(f"weights: cannot load '{weights}' into {network} ({reason}); pass "
                        f"{weights_file_name(network)}, weights=imagenet or weights=null") \
            from None
    base.trainable = False
    names = list(dict.fromkeys(layers))
    return keras.Model(base.inputs, {n: base.get_layer(n).output for n in names},
                       name=f"{network}_features")


def preprocess(network: str) -> Callable[[Any], Any]:
    """keras.applications' preprocess_input of `network`: RGB [0, 255] -> BGR, mean removed."""
    import keras

    return {"vgg16": keras.applications.vgg16.preprocess_input,
            "vgg19": keras.applications.vgg19.preprocess_input}[network]


def gram_matrix(features: tf.Tensor | np.ndarray) -> tf.Tensor:
    """The Gram matrix of feature maps, averaged over positions.

    Dividing by the number of positions (h * w) makes Gram matrices of images of different
    sizes comparable, and keeps the style loss of each layer on a similar scale.

    Args:
        features: (batch, h, w, channels) or (h, w, channels).

    Returns:
        (batch, channels, channels), or (channels, channels) for unbatched features:
        G[c, d] = mean over positions of F[., ., c] * F[., ., d].
    """
    import tensorflow as tf

    features = tf.convert_to_tensor(features, dtype=tf.float32)
    gram = tf.linalg.einsum("...ijc,...ijd->...cd", features, features)
    shape = tf.shape(features)
    positions = tf.cast(shape[-3] * shape[-2], tf.float32)
    return gram / positions


def content_loss(features: Mapping[str, tf.Tensor], targets: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """The mean squared difference of features, averaged over the layers of `targets`.

    Args:
        features: {layer: features} of the image being optimised.
        targets: {layer: features} of the content image.
    """
    import tensorflow as tf

    if not targets:
        return tf.constant(0.0)
    return tf.add_n([tf.reduce_mean(tf.square(features[k] - t)) for k, t in targets.items()]) \
        / len(targets)


def style_loss(features: Mapping[str, tf.Tensor],
               target_grams: Mapping[str, tf.Tensor]) -> tf.Tensor:
    """The mean squared difference of Gram matrices, averaged over the layers of
    `target_grams` (equal layer weights, as in Gatys et al.).

    Args:
        features: {layer: features} of the image being optimised.
        target_grams: {layer: gram_matrix(features)} of the style image.
    """
    import tensorflow as tf

    if not target_grams:
        return tf.constant(0.0)
    return tf.add_n([tf.reduce_mean(tf.square(gram_matrix(features[k]) - g))
                     for k, g in target_grams.items()]) / len(target_grams)


def total_variation_loss(image: tf.Tensor) -> tf.Tensor:
    """The summed absolute difference of neighbouring pixels on a [0, 1] scale (the tutorial's
    `tf.image.total_variation`), each |d| smoothed to sqrt(d^2 + e^2) - e with e one grey
    level: it penalises the high-frequency noise the VGG losses let in.

    The smoothing leaves real edges' values as they were but makes the loss differentiable
    where neighbours are equal: L-BFGS stalls on the kink of |d| at 0, which every flat
    region (a clear sky, a saturated patch, a constant channel) puts under it.

    Args:
        image: (batch, h, w, channels) in [0, 255].
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(image, dtype=tf.float32) / 255.0
    e = 1.0 / 255.0

    def smooth_abs(d: tf.Tensor) -> tf.Tensor:
        return tf.sqrt(tf.square(d) + e * e) - e

    return tf.reduce_sum(smooth_abs(x[:, 1:] - x[:, :-1])) + \
        tf.reduce_sum(smooth_abs(x[:, :, 1:] - x[:, :, :-1]))


def stylize(content: str | Path | np.ndarray, style: str | Path | np.ndarray, *,
            network: str = "vgg16", weights: str | None = "imagenet",
            content_layers: Sequence[str] = CONTENT_LAYERS,
            style_layers: Sequence[str] = STYLE_LAYERS, image_size: int = 256, steps: int = 200,
            optimizer: str = "adam", learning_rate: float = 5.0, content_weight: float = 1e4,
            style_weight: float = 1e-2, tv_weight: float = 30.0, seed: int = 0,
            init: str = "content",
            on_step: Callable[[int, dict[str, float]], None] | None = None
            ) -> StyleTransferResult:
    """Paint `content` in the style of `style`.

    Args:
        content: the picture whose content is kept (a file or an array, see `load_image`).
        style: the picture whose style is taken; resized to the same longer side, aspect kept
            (Gram matrices do not need both images to have one size).
        network: "vgg16" or "vgg19", the feature extractor.
        weights: "imagenet", a local weights file, or None (untrained). "imagenet" offline,
            without the file in Keras' cache, fails in seconds (`resolve_weights`).
        content_layers: the layers whose features the result must share with `content`.
        style_layers: the layers whose Gram matrices it must share with `style`.
        image_size: the longer side of the result in pixels.
        steps: Adam updates, or L-BFGS iterations (it may stop earlier once converged).
        optimizer: "adam" (keras.optimizers.Adam) or "lbfgs" (scipy's L-BFGS-B).
        learning_rate: Adam's step, in pixel units (0-255); L-BFGS needs none.
        content_weight: the weight of the content loss.
        style_weight: the weight of the style loss.
        tv_weight: the weight of the total variation loss.
        seed: seeds the noise start and an untrained network's weights.
        init: start from "content" (converges fastest) or from uniform "noise" (the paper's).
        on_step: called as on_step(step, {loss name: value}) for every history entry.

    Returns:
        A `StyleTransferResult`: the image and the per-step losses.
    """
    check_settings(network, content_layers, style_layers, image_size, steps, optimizer,
                   learning_rate, content_weight, style_weight, tv_weight, seed, init)
    weights = resolve_weights(network, weights)
    content_image = load_image(content, "content", image_size)
    style_image = load_image(style, "style", image_size)

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    extractor = build_extractor(network, weights, [*style_layers, *content_layers])
    prepare = preprocess(network)

    def features(image: tf.Tensor) -> dict[str, tf.Tensor]:
        return extractor(prepare(image), training=False)

    content_features = features(tf.constant(content_image[None]))
    style_features = features(tf.constant(style_image[None]))
    content_targets = {k: content_features[k] for k in dict.fromkeys(content_layers)}
    style_grams = {k: gram_matrix(style_features[k]) for k in dict.fromkeys(style_layers)}
    weight = {"content_loss": float(content_weight), "style_loss": float(style_weight),
              "tv_loss": float(tv_weight)}

    def loss_parts(image: tf.Tensor) -> dict[str, tf.Tensor]:
        found = features(image)
        return {"content_loss": weight["content_loss"] * content_loss(found, content_targets),
                "style_loss": weight["style_loss"] * style_loss(found, style_grams),
                "tv_loss": weight["tv_loss"] * total_variation_loss(image)}

    if init == "noise":
        start = np.random.default_rng(seed).uniform(0, 255, content_image.shape)
    else:
        start = content_image
    # The image is optimised in pixel space, RGB in [0, 255], with preprocess_input applied
    # inside the loss: the valid range is then a plain box (L-BFGS-B's bounds, a clip after
    # each Adam step), the TV loss and learning rate are in pixel units, and the result needs
    # no de-processing (in preprocessed space the box would differ per channel).
    start = start[None].astype(np.float32)
    result = StyleTransferResult(image=np.zeros(content_image.shape, np.uint8))

    def record(parts: Mapping[str, Any]) -> None:
        row = {k: float(v) for k, v in parts.items()}
        row = {"total_loss": sum(row.values()), **row}
        step = len(result.history["total_loss"])
        if not np.isfinite(row["total_loss"]):
            raise TrainingFailed(f"the loss became {row['total_loss']} at step {step}; lower "
                                 "learning_rate or the loss weights")
        for k in LOSSES:
            result.history[k].append(row[k])
        if on_step is not None:
            on_step(step, row)

    optimise = _adam if optimizer == "adam" else _lbfgs
    final = optimise(loss_parts, start, steps, learning_rate, record)
    result.image = np.clip(np.round(final[0]), 0, 255).astype(np.uint8)
    return result


def _adam(loss_parts: Callable[[tf.Tensor], dict[str, tf.Tensor]], start: np.ndarray,
          steps: int, learning_rate: float,
          record: Callable[[Mapping[str, Any]], None]) -> np.ndarray:
    import keras
    import tensorflow as tf

    image = tf.Variable(start, dtype=tf.float32, name="stylized")
    # the tutorial's beta_1 and epsilon (0.1 on a [0, 1] image: 0.1/255 in pixel units, as a
    # gradient in pixel units is 255 times smaller)
    adam = keras.optimizers.Adam(learning_rate=float(learning_rate), beta_1=0.99,
                                 epsilon=0.1 / 255)

    @tf.function
    def step() -> dict[str, tf.Tensor]:
        with tf.GradientTape() as tape:
            parts = loss_parts(image)
            total = tf.add_n(list(parts.values()))
        adam.apply_gradients([(tape.gradient(total, image), image)])
        image.assign(tf.clip_by_value(image, 0.0, 255.0))
        return parts  # the losses of the image before this update

    for _ in range(steps):
        record(step())
    record(tf.function(loss_parts)(image))  # the result's own losses: the last entry
    return image.numpy()


def _lbfgs(loss_parts: Callable[[tf.Tensor], dict[str, tf.Tensor]], start: np.ndarray,
           steps: int, learning_rate: float,
           record: Callable[[Mapping[str, Any]], None]) -> np.ndarray:
    import tensorflow as tf
    from scipy.optimize import Bounds, minimize

    shape = start.shape

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def value_and_grad(image: tf.Tensor) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(image)
            parts = loss_parts(image)
            total = tf.add_n(list(parts.values()))
        return parts, tape.gradient(total, image)

    # the last evaluation: scipy's first call is at x0 (already recorded as step 0), and an
    # iteration's callback is at the point its line search evaluated last
    last: dict[str, Any] = {"x": None}

    def evaluate(x: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
        if last["x"] is None or not np.array_equal(x, last["x"]):
            parts, grad = value_and_grad(tf.constant(x.reshape(shape), tf.float32))
            last.update(x=x.copy(), parts={k: float(v) for k, v in parts.items()},
                        grad=grad.numpy().astype(np.float64).ravel())
        return last["parts"], last["grad"]

    def fun(x: np.ndarray) -> tuple[float, np.ndarray]:
        parts, grad = evaluate(x)
        return sum(parts.values()), grad

    x0 = start.astype(np.float64).ravel()
    record(evaluate(x0)[0])
    found = minimize(fun, x0, jac=True, method="L-BFGS-B",
                     bounds=Bounds(np.zeros_like(x0), np.full_like(x0, 255.0)),
                     # maxfun: line searches take one to a few evaluations an iteration
                     options={"maxiter": steps, "maxfun": 4 * steps + 10},
                     callback=lambda intermediate_result: record(
                         evaluate(intermediate_result.x)[0]))
    return found.x.reshape(shape)


def write_outputs(result: StyleTransferResult, out: Path) -> dict[str, Path]:
    """Write stylized.png, losses.csv and loss_curve.png into `out` (created if need be).

    Returns:
        {"image": ..., "losses": ..., "curve": ...} paths.
    """
    from PIL import Image

    from kexp.plotting import pyplot

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"image": out / "stylized.png", "losses": out / "losses.csv",
             "curve": out / "loss_curve.png"}
    Image.fromarray(result.image).save(files["image"])
    with files["losses"].open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", *LOSSES])
        for step, values in enumerate(zip(*(result.history[k] for k in LOSSES), strict=True)):
            writer.writerow([step, *(f"{v:.8g}" for v in values)])
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        # a part whose weight is 0 stays 0: left out, it would break the log scale
        shown = {k: v for k, v in result.history.items() if any(x != 0 for x in v)}
        for name, values in shown.items():
            ax.plot(range(len(values)), values, label=name, lw=2 if name == "total_loss" else 1)
        # the parts span orders of magnitude; a zero (the content loss at a content start)
        # is left out of the log scale rather than forcing a linear one
        if shown and all(x >= 0 for v in shown.values() for x in v):
            ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel("step")
        ax.set_ylabel("loss (weighted)")
        ax.set_title("style transfer losses")
        if shown:
            ax.legend()
        fig.tight_layout()
        fig.savefig(files["curve"], dpi=100)
    finally:
        plt.close(fig)
    return files


def plan(cfg: DictConfig) -> StylizeJob:
    """Check a `python -m kexp.stylize` config and load its images, without TensorFlow: every
    mistake a user can make is one KexpError line here, in about a second.

    Args:
        cfg: the composed stylize config (conf/stylize.yaml).
    """
    from omegaconf import OmegaConf

    settings = {
        "network": cfg.network, "weights": cfg.weights,
        "content_layers": list(cfg.content_layers) if OmegaConf.is_list(cfg.content_layers)
        else cfg.content_layers,
        "style_layers": list(cfg.style_layers) if OmegaConf.is_list(cfg.style_layers)
        else cfg.style_layers,
        "image_size": cfg.image_size, "steps": cfg.steps, "optimizer": cfg.solver,
        "learning_rate": cfg.learning_rate, "content_weight": cfg.content_weight,
        "style_weight": cfg.style_weight, "tv_weight": cfg.tv_weight, "seed": cfg.seed,
        "init": cfg.init}
    for key in ("content", "style"):
        if cfg[key] is None:
            raise KexpError(f"{key} is required here: add {key}=FILE to the command")
    check_settings(**{k: v for k, v in settings.items() if k != "weights"})
    # the images first: a mistyped file name is more likely than missing weights, and the
    # weights check may wait seconds on the network
    content = load_image(str(cfg.content), "content", cfg.image_size)
    style = load_image(str(cfg.style), "style", cfg.image_size)
    settings["weights"] = resolve_weights(cfg.network, cfg.weights)
    # microseconds and the process id keep two runs started in the same second apart
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S") + f"-{time.time_ns() // 1000 % 10**6:06d}"
    out = Path(cfg.out).expanduser() if cfg.out else \
        Path(cfg.paths.log_dir) / "stylize" / f"{stamp}_{os.getpid()}"
    _check_writable(out)
    content_name, style_name = Path(str(cfg.content)).stem, Path(str(cfg.style)).stem
    run_name = cfg.run_name or f"stylize-{content_name}-{style_name}"
    tree = OmegaConf.to_container(cfg, resolve=False)
    params = {k: v for k, v in tree.items() if k not in ("hydra", "paths", "logger")}
    params.update(out=str(out), weights_used=str(settings["weights"]))
    tags = {"kexp.command": "stylize", "network": str(cfg.network),
            "content": Path(str(cfg.content)).name, "style": Path(str(cfg.style)).name}
    return StylizeJob(content, style, settings, out, run_name, params, tags)


def run(job: StylizeJob, tracker: Tracker | None = None) -> StyleTransferResult:
    """Run a planned job as one MLflow run (`tracker`, None: no tracking): params from the
    config, the losses at every step, the image, curve and csv as artifacts; the run ends
    FINISHED, FAILED or KILLED (Ctrl-C).

    Args:
        job: what `plan` made of the config.
        tracker: a started-or-not `kexp.tracking.tracker.Tracker` (`make_tracker`).
    """
    from kexp.tracking.tracker import NullTracker, run_tags

    tracker = tracker or NullTracker()
    tracker.run_dir = job.out
    tracker.start(job.run_name, job.params,
                  run_tags(job.settings["network"], "style-transfer", job.tags))
    try:
        result = stylize(job.content, job.style, **job.settings,
                         on_step=lambda step, row: tracker.log_metrics(row, step=step))
        files = write_outputs(result, job.out)
        for path in files.values():
            tracker.log_artifact(path)
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return result


def _check_writable(out: Path) -> None:
    """`out` is a directory, or can be made: named before any work, not after it."""
    path = out.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir() or not os.access(path, os.W_OK | os.X_OK):
        raise KexpError(f"out: cannot write to '{out}' ({path} is not a writable directory)")
