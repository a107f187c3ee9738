"""`task=language_model`: next-token cross-entropy on windows of a tokenized corpus
(data=text_file, data=tiny_shakespeare; kexp.data.corpus).

Any text backbone whose features come one per position serves: the task builds those that
pool (rnn, lstm, gru, tcn, transformer) with `pooling=none`, and `gpt` reads every position
already. The head is a Dense layer over the vocabulary, or with `task.tie_weights` the
transposed token embedding (Press & Wolf, 2017). Reported: nats per token, bits per token
(per character with data.tokens=char, per word with word) and perplexity, for validation
and test; the monitor is the validation loss.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kexp.config import is_int, is_number
from kexp.errors import KexpError
from kexp.tasks.base import Task

if TYPE_CHECKING:
    import keras
    from omegaconf import DictConfig

    from kexp.data import DataBundle, DataSpec

SAMPLES_DIR, FINAL_SAMPLE = "samples", "sample.txt"
# what kexp.tune may judge trials by: the validation cross-entropy in any of its units
OBJECTIVES = ("val_bits_per_token", "val_nats_per_token", "val_perplexity", "val_loss")
PROMPT_TOKENS = 32  # the default prompt of the epoch samples: the validation split's start


class LanguageModel(Task):
    """Per-position vocabulary head on a causal backbone; next-token cross-entropy."""

    LOSSES = ("cross_entropy",)
    METRICS = ("accuracy", "nats_per_token", "bits_per_token", "perplexity")
    TARGETS = "tokens"
    KNOBS = {
        "tie_weights": (lambda v: isinstance(v, bool), "true or false"),
        "sample_prompt": (lambda v: v is None or isinstance(v, str), "a string, or null"),
        "sample_length": (lambda v: is_int(v) and v >= 0, "an integer >= 0 (0: no samples)"),
        "sample_temperature": (lambda v: is_number(v) and v >= 0, "a number >= 0 (0: greedy)"),
        # read by kexp.tune only (tuner.objective); training monitors task.monitor
        "objective": (lambda v: v in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
    }
    CURVE_METRIC = "bits_per_token"

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        if spec.token_unit is None or spec.target_shape is not None:
            raise KexpError(f"task=language_model reads a text corpus, but data={data_name} is "
                            f"not one; use data=text_file data.path=<file or folder> or "
                            f"data=tiny_shakespeare")

    def build_model(self, model_cfg: DictConfig, spec: DataSpec,
                    allow_targets: Sequence[str] = ()) -> keras.Model:
        """The backbone with every position's features (pooling=none where the builder
        pools), and the vocabulary head on each position."""
        from omegaconf import OmegaConf

        from kexp import models

        builder = models.resolve_builder(model_cfg._target_, allow_targets)
        if "pooling" in inspect.signature(builder).parameters:
            model_cfg = OmegaConf.merge(model_cfg, {"pooling": "none"})
        backbone = models.backbone(model_cfg, spec.input_shape, vocab_size=spec.vocab_size,
                                   allow_targets=allow_targets)
        if len(backbone.output.shape) != 3:
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} gives one "
                            f"feature vector per text; task=language_model needs one per "
                            f"position: model=rnn, lstm, gru, tcn, transformer, gpt or gpt_mini")
        return models.attach(backbone, lambda x: self.logits(x, backbone, spec, model_cfg))

    def logits(self, features: Any, backbone: keras.Model, spec: DataSpec,
               model_cfg: DictConfig) -> Any:
        """float32 next-token logits (batch, context, vocab) at every position."""
        import keras

        from kexp.models import heads
        from kexp.models.layers import regularizer

        if self.settings.get("tie_weights", False):
            embedding = _embedding(backbone)
            if features.shape[-1] != embedding.output_dim:
                raise KexpError(f"task.tie_weights: the features ({features.shape[-1]} wide) "
                                f"must be as wide as the token embedding "
                                f"({embedding.output_dim}); make them equal or set "
                                f"task.tie_weights=false")
            scores = embedding(features, reverse=True)
        else:
            l1, l2 = heads.penalties(model_cfg)
            scores = keras.layers.Dense(spec.vocab_size, kernel_regularizer=regularizer(l1, l2),
                                        name="next_token")(features)
        return keras.layers.Activation("linear", dtype="float32", name="logits")(scores)

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        import keras

        from kexp.tasks.language_model import metrics

        # the weighted mean: the last validation window weighs only the targets it adds
        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight")
        # weighted_metrics: Keras 3 hands the sample weights to these only
        return {"loss": loss, "weighted_metrics": metrics.compiled()}

    def callbacks(self, model: keras.Model, data: DataBundle, out: Path | None,
                  tracker: Any, history: dict[str, list[float]] | None = None) -> list[Any]:
        from kexp.tasks.language_model.samples import EpochSamples, save_vocabulary

        if out is None:  # a tuning trial: no files, no samples
            return []
        tracker.log_artifact(save_vocabulary(data.tokenizer, out))
        length = int(self.settings.get("sample_length", 200))
        if not length:
            return []
        return [EpochSamples(data, out / SAMPLES_DIR, tracker, self.prompt_ids(data), length,
                             float(self.settings.get("sample_temperature", 0.8)))]

    def prompt_ids(self, data: DataBundle) -> list[int]:
        """The epoch samples' prompt: task.sample_prompt, else the validation split's start."""
        prompt = self.settings.get("sample_prompt")
        if prompt:
            return data.tokenizer.encode(prompt, strict_key="task.sample_prompt")
        x = next(iter(data.val.unbatch().take(1)))[0].numpy()
        return [int(i) for i in x[:min(PROMPT_TOKENS, len(x))]]

    def summarize(self, history: dict[str, list[float]], test: dict[str, float]
                  ) -> dict[str, Any]:
        """Keras' numbers, plus bits per character (or per word) under their own name."""
        summary = super().summarize(history, test)
        unit = (self.cfg.data.get("tokens") if self.cfg is not None else None) or "token"
        if "test_bits_per_token" in summary and unit in ("char", "word"):
            summary[f"test_bits_per_{unit}"] = summary["test_bits_per_token"]
            best = history.get("val_bits_per_token") or []
            if best and summary["best_epoch"] <= len(best):
                summary[f"val_bits_per_{unit}"] = float(best[summary["best_epoch"] - 1])
        return summary

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """The kept model's sample from the epoch samples' prompt, as sample.txt."""
        from kexp.tasks.language_model.samples import sample_text

        length = int(self.settings.get("sample_length", 200)) or 200
        text, speed = sample_text(model, data.tokenizer, self.prompt_ids(data), length,
                                  float(self.settings.get("sample_temperature", 0.8)))
        path = out / FINAL_SAMPLE
        path.write_text(text, encoding="utf-8")
        return [path], {"generation_tokens_per_second": round(speed, 1)}, {}

    def headline(self, metrics: dict[str, Any]) -> str:
        shown = [k for k in ("test_bits_per_char", "test_bits_per_word", "test_perplexity",
                             "test_loss") if k in metrics and not math.isnan(metrics[k])]
        return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)


def _embedding(backbone: keras.Model) -> Any:
    from kexp.models.sequence import token_embedding

    layer = token_embedding(backbone)
    if layer is None:
        raise KexpError(f"task.tie_weights: model {backbone.name} has no ReversibleEmbedding "
                        f"token table to tie to; set task.tie_weights=false")
    return layer
