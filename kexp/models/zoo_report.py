"""The model zoo's card: every preset at its natural input, its parameters, FLOPs and reference.

    python -m kexp.models.zoo_report > docs/models.md      # (make zoo-report)

Each preset is built as `python -m kexp model=<preset>` composes it. Where keras.applications has
the same network, it is built too and the counts are compared here, in the report's own run; a
published count is quoted with its source and compared with the trainable weights (papers do
not count batch-norm moving statistics; `params` counts every weight, as Keras does). The tests
check the same references.
"""

from __future__ import annotations

import math
import platform
import sys
from dataclasses import dataclass

# what each preset is for: one example's shape and the number of classes
MNIST, CIFAR, IMAGENET, IMDB = ((28, 28, 1), 10), ((32, 32, 3), 10), ((224, 224, 3), 1000), \
    ((256,), 2)
TEXT_VOCAB = 20000  # data.max_tokens of the text data configs


@dataclass(frozen=True)
class Reference:
    """A published parameter count, or a keras.applications model with the same layout."""

    source: str
    params: int | None = None  # quoted trainable count (None: build `keras_app` and compare)
    keras_app: str | None = None
    overrides: tuple[tuple[str, object], ...] = ()  # settings the reference layout needs
    data: tuple[tuple[int, ...], int] | None = None  # its input and classes, if not the preset's
    conv_biases: bool = False  # the Keras model keeps conv biases before batch norm; ours not


REFERENCES = {
    "lenet": Reference("LeCun et al. 1998 (padding=valid, 32x32x1)", 61_706,
                       overrides=(("padding", "valid"),), data=((32, 32, 1), 10)),
    "alexnet": Reference("torchvision AlexNet", 61_100_840),
    "vgg16": Reference("keras.applications.VGG16 (ImageNet head, no BN)", keras_app="VGG16",
                       overrides=(("batch_norm", False), ("dense_units", [4096, 4096])),
                       data=IMAGENET),
    "vgg19": Reference("keras.applications.VGG19 (ImageNet head, no BN)", keras_app="VGG19",
                       overrides=(("batch_norm", False), ("dense_units", [4096, 4096])),
                       data=IMAGENET),
    "resnet18": Reference("torchvision resnet18", 11_689_512),
    "resnet34": Reference("torchvision resnet34", 21_797_672),
    "resnet9": Reference("Page 2018, DAWNBench: 6.57 M", 6_570_000),
    "resnet20": Reference("He et al. 2016, Table 6: 0.27 M", 270_000),
    "resnet32": Reference("He et al. 2016, Table 6: 0.46 M", 460_000),
    "resnet44": Reference("He et al. 2016, Table 6: 0.66 M", 660_000),
    "resnet56": Reference("He et al. 2016, Table 6: 0.85 M", 850_000),
    "resnet110": Reference("He et al. 2016, Table 6: 1.7 M", 1_700_000),
    "resnet50": Reference("keras.applications.ResNet50", keras_app="ResNet50", conv_biases=True),
    "resnet101": Reference("keras.applications.ResNet101", keras_app="ResNet101",
                           conv_biases=True),
    "resnet152": Reference("keras.applications.ResNet152", keras_app="ResNet152",
                           conv_biases=True),
    "densenet_bc100": Reference("Huang et al. 2017, Table 2: 0.8 M", 800_000),
    "densenet121": Reference("keras.applications.DenseNet121", keras_app="DenseNet121"),
    "densenet169": Reference("keras.applications.DenseNet169", keras_app="DenseNet169"),
    "densenet201": Reference("keras.applications.DenseNet201", keras_app="DenseNet201"),
    "mobilenet": Reference("keras.applications.MobileNet", keras_app="MobileNet"),
    "mobilenet_v2": Reference("keras.applications.MobileNetV2", keras_app="MobileNetV2"),
}

IMAGENET_PRESETS = {"alexnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152",
                    "densenet121", "densenet169", "densenet201", "mobilenet", "mobilenet_v2"}
MNIST_PRESETS = {"mlp", "lenet", "cnn"}


def natural_input(name: str, is_text: bool) -> tuple[tuple[int, ...], int]:
    if is_text:
        return IMDB
    if name in IMAGENET_PRESETS:
        return IMAGENET
    return MNIST if name in MNIST_PRESETS else CIFAR


def rows() -> list[dict[str, object]]:
    import inspect

    import keras
    from omegaconf import OmegaConf

    from kexp.config import compose, config_dir
    from kexp.models import backbone_names, build, count_flops, resolve_builder

    table = []
    for name in backbone_names():
        model_cfg = compose(config_dir(), "train", [f"model={name}"]).model
        is_text = "vocab_size" in inspect.signature(resolve_builder(model_cfg._target_)).parameters
        shape, classes = natural_input(name, is_text)
        if getattr(resolve_builder(model_cfg._target_), "reads_sentences", False):
            shape = (model_cfg.sentences, 32)  # imdb as sentences: data.sentence_length 32
        vocab = TEXT_VOCAB if is_text else None
        model = build(model_cfg, shape, classes, vocab_size=vocab)
        row = {"preset": name, "family": model_cfg._target_.rsplit(".", 1)[-1],
               "input": "x".join(map(str, shape)) + (f" (vocab {vocab})" if vocab else ""),
               "classes": classes, "params": model.count_params(), "flops": count_flops(model),
               "reference": ""}
        ref = REFERENCES.get(name)
        if ref is not None:
            if ref.overrides or ref.data:
                model = build(OmegaConf.merge(model_cfg, dict(ref.overrides)),
                              *(ref.data or (shape, classes)))
            ours = model.count_params()
            trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
            if ref.keras_app:
                theirs = getattr(keras.applications, ref.keras_app)(weights=None)
                expected = theirs.count_params() - (_conv_biases(theirs) if ref.conv_biases else 0)
                verdict = "equal" if ours == expected else f"differs by {ours - expected:+,}"
                extra = " once Keras' conv biases before BN are removed" if ref.conv_biases else ""
                row["reference"] = f"{ref.source} {theirs.count_params():,}: {verdict}{extra}"
            else:
                # papers count trainable weights (no batch-norm moving statistics)
                gap = "equal" if trainable == ref.params else f"{trainable / ref.params - 1:+.1%}"
                row["reference"] = f"{ref.source}; ours {trainable:,} trainable ({gap})"
            keras.backend.clear_session()
        table.append(row)
    return table


def _conv_biases(model) -> int:
    import keras

    return sum(int(layer.bias.shape[0]) for layer in model.layers
               if isinstance(layer, keras.layers.Conv2D) and layer.use_bias)


def markdown(table: list[dict[str, object]]) -> str:
    lines = ["| preset | family | input | classes | params | GFLOPs | reference |",
             "|---|---|---|---|---:|---:|---|"]
    for r in table:
        lines.append(f"| `{r['preset']}` | {r['family']} | {r['input']} | {r['classes']} | "
                     f"{r['params']:,} | {r['flops'] / 1e9:.3g} | {r['reference']} |")
    return "\n".join(lines)


def main() -> None:
    from kexp.environment import import_tensorflow_quietly

    import_tensorflow_quietly()
    import keras

    table = markdown(rows())
    print(f"<!-- python -m kexp.models.zoo_report; Python {platform.python_version()}, "
          f"keras {keras.__version__}, {sys.platform} -->")
    print(table)


if __name__ == "__main__":
    main()
