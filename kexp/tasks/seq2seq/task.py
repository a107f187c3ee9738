"""task=seq2seq: an encoder-decoder learns to write the target sequence of a source one.

The model (an `@encoder_decoder` builder, kexp/models/encoder_decoder.py) reads the source ids
and the decoder input ([START] t1 .. tn, teacher forcing) and gives float32 logits over the
target vocabulary at every target position. The loss is the cross-entropy of t1 .. tn [END],
weighted by the batches' weight, which is 0 on padding, so neither the loss (Keras'
mean_with_sample_weight: the mean over real target tokens) nor the token accuracy ever counts
a padded position. The monitor is the validation loss, or with `task.eval_every` k the
validation BLEU (or chrF) of greedy translations every k epochs (`task.monitor=val_bleu
task.mode=max`, kexp/tasks/seq2seq/callbacks.py).

After training, the kept model translates every distinct source of the test split greedily
(kexp.decoding) and sacreBLEU scores it against all of that source's targets: test_bleu and
test_chrf in metrics.json (with `task.beam` k > 1 also by beam search: test_bleu_beam,
test_chrf_beam, test_translations_beam.tsv), their signatures in sacrebleu.txt, every
translation in test_translations.tsv (the references of a source joined by " | "), the
first `task.examples` in translations.html and the decoder's attention over the source for
the first four in attention.png (kexp/tasks/seq2seq/attention.py).
"""

from __future__ import annotations

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


class Seq2Seq(Task):
    """Masked next-token cross-entropy of an encoder-decoder; BLEU and chrF at the end."""

    LOSSES = ("cross_entropy",)
    METRICS = ("accuracy",)
    TARGETS = "tokens"
    KNOBS = {
        "examples": (lambda v: is_int(v) and v >= 0,
                     "an integer >= 0 (test translations shown in translations.html)"),
        "beam": (lambda v: is_int(v) and v >= 1,
                 "an integer >= 1 (1: greedy decoding only; k > 1: the test split is also "
                 "translated by beam search with k hypotheses)"),
        "length_penalty": (lambda v: is_number(v) and v >= 0,
                           "a number >= 0 (beam search's alpha; 0: plain log-probability)"),
        "eval_every": (lambda v: v is None or (is_int(v) and v >= 1),
                       "null (no validation BLEU) or an integer >= 1 (epochs between "
                       "translations of the validation split: val_bleu, val_chrf)"),
    }

    @classmethod
    def logged_metrics(cls) -> tuple[str, ...]:
        return (*super().logged_metrics(), "val_bleu", "val_chrf")

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        super().check_settings(settings)
        if settings.get("monitor") in ("val_bleu", "val_chrf") and \
                settings.get("eval_every") is None:
            raise KexpError(f"task.monitor: {settings['monitor']} is only logged with "
                            f"task.eval_every set (an integer: every how many epochs the "
                            f"validation split is translated)")
    CURVE_METRIC = "accuracy"

    def check_model(self, model_cfg: DictConfig, allow_targets: Sequence[str] = ()) -> None:
        from kexp.models import resolve_builder
        from kexp.models.encoder_decoder import is_encoder_decoder

        if not is_encoder_decoder(resolve_builder(model_cfg._target_, allow_targets)):
            raise KexpError(f"model={model_cfg.get('name', model_cfg._target_)} is not an "
                            f"encoder-decoder; task=seq2seq needs one: model=rnn_seq2seq or "
                            f"model=transformer_seq2seq")

    def check_data(self, spec: DataSpec, data_name: str) -> None:
        if spec.target_shape is None:
            raise KexpError(f"task=seq2seq reads sentence pairs, but data={data_name} is not "
                            f"such a set; use data=parallel_text data.path=<source<TAB>target "
                            f"file>")

    def build_model(self, model_cfg: DictConfig, spec: DataSpec,
                    allow_targets: Sequence[str] = ()) -> keras.Model:
        """The encoder-decoder `model_cfg` names, sized by both vocabularies and lengths."""
        from omegaconf import OmegaConf

        from kexp.models import resolve_builder

        builder = resolve_builder(model_cfg._target_, allow_targets)
        knobs = {k: v for k, v in OmegaConf.to_container(model_cfg, resolve=True).items()
                 if k not in ("_target_", "name")}
        return builder(input_shape=tuple(spec.input_shape), vocab_size=int(spec.vocab_size),
                       target_shape=tuple(spec.target_shape),
                       target_vocab_size=int(spec.target_vocab_size), **knobs)

    def compile_args(self, spec: DataSpec) -> dict[str, Any]:
        import keras

        loss = keras.losses.SparseCategoricalCrossentropy(
            from_logits=True, reduction="mean_with_sample_weight")
        # weighted_metrics: Keras 3 hands the sample weights (0 on padding) to these only
        return {"loss": loss,
                "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}

    def callbacks(self, model: keras.Model, data: DataBundle, out: Path | None,
                  tracker: Any, history: dict[str, list[float]] | None = None) -> list[Any]:
        from kexp.tasks.seq2seq.callbacks import BleuMonitor

        if out is not None:  # a tuning trial writes no files
            tracker.log_artifact(data.tokenizer.save(out))
        every = self.settings.get("eval_every")
        return [] if every is None else [BleuMonitor(data.tokenizer, data.pairs["val"],
                                                     int(every), history)]

    def evaluate(self, model: keras.Model, data: DataBundle, out: Path
                 ) -> tuple[list[Path], dict[str, float], dict[str, float]]:
        """The test split translated greedily (and by beam search with `task.beam` > 1) and
        scored by sacreBLEU."""
        from kexp.decoding import Decoder
        from kexp.tasks.seq2seq import attention
        from kexp.tasks.seq2seq.translation import by_source, scores, translate, write_examples

        sources, references = by_source(data.pairs["test"])
        decoder = Decoder(model, data.tokenizer.target_length)
        searches = {"": 1}
        if int(self.settings.get("beam", 1)) > 1:
            searches["_beam"] = int(self.settings["beam"])
        outputs, metrics, extra, lines = {}, {}, {}, []
        for suffix, beam in searches.items():
            hypotheses, speed = translate(
                model, data.tokenizer, sources, decoder=decoder, beam=beam,
                length_penalty=float(self.settings.get("length_penalty", 0.6)))
            found = scores(hypotheses, references, data.tokenizer.target.lowercase)
            search = "greedy" if beam == 1 else f"beam {beam}"
            outputs[search] = hypotheses
            metrics[f"test_bleu{suffix}"] = round(found["bleu"], 4)
            metrics[f"test_chrf{suffix}"] = round(found["chrf"], 4)
            extra[f"decoding_tokens_per_second{suffix}"] = round(speed, 1)
            lines += [f"BLEU {found['bleu']:.2f} {found['bleu_signature']} ({search})",
                      f"chrF {found['chrf']:.2f} {found['chrf_signature']} ({search})"]
        files = write_examples([(s, " | ".join(r)) for s, r in zip(sources, references,
                                                                    strict=True)],
                               outputs, out, int(self.settings.get("examples", 20)))
        (out / "sacrebleu.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append(out / "sacrebleu.txt")
        picture = attention.draw(model, data.tokenizer, sources[:4], outputs["greedy"][:4], out)
        return [*files, *([picture] if picture else [])], metrics, extra

    def headline(self, metrics: dict[str, Any]) -> str:
        shown = [k for k in ("test_bleu", "test_chrf", "test_bleu_beam", "test_chrf_beam",
                             "test_accuracy", "test_loss")
                 if k in metrics]
        return "  ".join(f"{k} {metrics[k]:.4f}" for k in shown)
