"""Model builders, one public function per family, chosen by `model._target_` in conf/model/.

Adding a family is one file here (a function `family(input_shape, **knobs)` returning a
`keras.Model` whose output is a feature vector: a backbone, no head) plus one yaml in
conf/model/ whose `_target_` names it; the task (kexp.tasks) adds the head. A
user's own builder works the same way from their own package. Text builders also take
`vocab_size`; that is how `build` tells sequence models from image models.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from kexp.config import allowlist_of, import_target
from kexp.errors import KexpError
from kexp.models.flops import count_flops

__all__ = ["attach", "backbone", "backbone_names", "build", "count_flops", "load_model", "names",
           "resolve_builder"]

# keys in a model yaml that describe the model rather than feed the builder (sentences: the
# sentences per document a model=han reads, which data.sentences follows)
_META_KEYS = ("_target_", "name", "sentences")


def resolve_builder(target: str, allowed: Sequence[str] = ()) -> Callable[..., Any]:
    """The builder function `target` names, imported only if it is in kexp.*, keras.* or
    `allowed` (`kexp.allow_targets`): importing a module runs its code."""
    return import_target("model._target_", target, allowed)


_DATA_ARGS = ("input_shape", "num_classes", "vocab_size")


def names() -> list[str]:
    """Every model preset and family: the options of the `model` config group."""
    from kexp.config import group_options

    return group_options("model")


def backbone_names() -> list[str]:
    """The presets that build one network on one input (a backbone, or a whole classifier):
    every option but the generative ones (gan_mlp, dcgan), which build a generator and a
    discriminator for task=gan, the encoder-decoders (rnn_seq2seq, transformer_seq2seq),
    which read a source and a target sequence for task=seq2seq, and the pointer networks
    (pointer_net) of task=pointer."""
    from kexp.config import compose, config_dir
    from kexp.models.encoder_decoder import is_encoder_decoder
    from kexp.models.generative import is_generative
    from kexp.models.pointer_net import is_pointer_network

    def target(name: str) -> str:
        return compose(config_dir(), "train", [f"model={name}"]).model._target_

    def one_network(builder) -> bool:
        return not (is_generative(builder) or is_encoder_decoder(builder)
                    or is_pointer_network(builder))

    return [n for n in names() if one_network(resolve_builder(target(n)))]


def has_own_head(model_cfg: DictConfig, allow_targets: Sequence[str] | None = None) -> bool:
    """True for a builder that takes `num_classes` and returns class probabilities itself (the
    contract kexp's builders had before tasks): classification with a softmax loss uses such
    a model whole; every other task needs a backbone."""
    if allow_targets is None:
        allow_targets = allowlist_of(model_cfg)
    builder = resolve_builder(model_cfg._target_, allow_targets)
    return "num_classes" in inspect.signature(builder).parameters


def backbone(model_cfg: DictConfig, input_shape: Sequence[int], vocab_size: int | None = None,
             allow_targets: Sequence[str] | None = None, num_classes: int | None = None):
    """Build the backbone `model_cfg` describes: the network up to its features, no head.

    Args:
        model_cfg: the `model` config group: `_target_` (dotted path of the builder),
            `name`, and the builder's keyword arguments.
        input_shape: shape of one example, e.g. `(32, 32, 3)` for images or
            `(sequence_length,)` for token ids.
        vocab_size: size of the token vocabulary for text data; None for images and tables.
        num_classes: for a builder with its own head only (`has_own_head`): its classes.
        allow_targets: modules besides kexp and keras whose builders may be named by
            `_target_`; None: the `kexp.allow_targets` of the config `model_cfg` was taken
            from (`cfg.model` of a composed training config), else none.

    Returns:
        An uncompiled `keras.Model` whose output is one feature vector per example; a task
        (kexp.tasks) puts its head on it.
    """
    if allow_targets is None:
        allow_targets = allowlist_of(model_cfg)
    builder = resolve_builder(model_cfg._target_, allow_targets)
    if getattr(builder, "generative", False):
        raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} builds a generator "
                        f"and a discriminator: use it with task=gan")
    if getattr(builder, "encoder_decoder", False):
        raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} reads a source "
                        f"sequence and writes a target one: use it with task=seq2seq")
    if getattr(builder, "pointer_network", False):
        raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} reads points and "
                        f"points at them: use it with task=pointer")
    knobs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
             if k not in _META_KEYS}
    accepted = inspect.signature(builder).parameters
    if "num_classes" in accepted:
        if num_classes is None:
            raise KexpError(f"model._target_: {model_cfg._target_} takes num_classes: it builds "
                            f"a whole classifier, which only task=classification with a softmax "
                            f"loss can use; to serve every task, return the features and drop "
                            f"num_classes (the task adds the head)")
    unknown = sorted(k for k in knobs if k not in accepted or k in _DATA_ARGS)
    if unknown:
        raise KexpError(
            f"model.{unknown[0]}: not a setting of {model_cfg._target_}; "
            f"valid: {', '.join(p for p in accepted if p not in _DATA_ARGS)}"
        )
    name = model_cfg.get("name", model_cfg._target_)
    takes_text = "vocab_size" in accepted
    if takes_text and vocab_size is None:
        raise KexpError(f"model={name} reads token sequences but the data are images; use a "
                        f"text data set (data=imdb_reviews, data=ag_news_subset, data=text_csv)")
    if not takes_text and vocab_size is not None:
        raise KexpError(f"model={name} reads images but the data are token sequences; use a "
                        f"text model (model=lstm, model=transformer, model=tcn, ...)")
    if getattr(builder, "input_rank", None) not in (None, len(input_shape)):
        raise KexpError(f"model={name} needs images (height, width, channels), got input "
                        f"shape {tuple(input_shape)}")
    if takes_text:
        knobs["vocab_size"] = int(vocab_size)
    if "num_classes" in accepted:
        knobs["num_classes"] = int(num_classes)
    try:
        return builder(input_shape=tuple(input_shape), **knobs)
    except ValueError as exc:
        # Keras reports an input too small for the architecture deep inside a layer
        raise KexpError(
            f"model={name} cannot take inputs of shape "
            f"{tuple(input_shape)}: {str(exc).splitlines()[0]}"
        ) from None


def build(model_cfg: DictConfig, input_shape: Sequence[int], num_classes: int,
          vocab_size: int | None = None, allow_targets: Sequence[str] | None = None):
    """The backbone `model_cfg` describes with the classification head on it (logits ->
    float32 softmax): what `task=classification` with its default loss trains. Arguments as
    in `backbone`, plus `num_classes`, the number of output classes.

    Returns:
        An uncompiled `keras.Model` with a float32 softmax output.
    """
    from kexp.models import heads

    if has_own_head(model_cfg, allow_targets):  # a whole classifier already
        return backbone(model_cfg, input_shape, vocab_size, allow_targets, num_classes)
    features = backbone(model_cfg, input_shape, vocab_size, allow_targets)
    l1, l2 = heads.penalties(model_cfg)
    return heads.attach(features, lambda x: heads.class_scores(x, num_classes, l1=l1, l2=l2))


def attach(backbone: Any, head: Callable[[Any], Any]) -> Any:
    """`kexp.models.heads.attach`: one functional model, `head` on `backbone`'s features."""
    from kexp.models import heads

    return heads.attach(backbone, head)


def load_model(path, safe_mode: bool = True, compile: bool = True):
    """`keras.saving.load_model` with kexp's custom layers registered, in Keras' safe mode.

    Safe mode refuses a `Lambda` layer holding Python bytecode: loading it would run code from
    the file. `safe_mode=False` (`kexp.eval unsafe_load=true`) is for files the user trusts.
    """
    import keras

    import kexp.models

    for module in pkgutil.iter_modules(kexp.models.__path__):
        importlib.import_module(f"kexp.models.{module.name}")  # registers their layers
    importlib.import_module("kexp.tasks.losses")  # and the tasks' losses a compiled model names
    try:
        return keras.saving.load_model(path, safe_mode=safe_mode, compile=compile)
    except ValueError as exc:
        if "arbitrary code execution" in str(exc):
            raise KexpError(
                f"'{path}' holds a Lambda layer with Python code, which would run on load "
                f"(arbitrary code execution); refused in safe mode. If you trust the file, "
                f"load it with unsafe_load=true (kexp.eval) or load_model(path, safe_mode=False)"
            ) from None
        raise KexpError(f"cannot load model '{path}': {str(exc).splitlines()[0]}") from None
