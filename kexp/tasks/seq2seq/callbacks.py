"""What a seq2seq run does after an epoch: with `task.eval_every` k, every k epochs (the
first and the last too) the validation split's distinct sources are translated greedily and
scored by sacreBLEU, giving `val_bleu` and `val_chrf` in the epoch logs: a monitor
(`task.monitor=val_bleu task.mode=max`) and a tuner objective that judge what a user reads,
the translations, rather than the teacher-forced loss."""

from __future__ import annotations

from typing import Any

from kexp.data.pairs import Translation
from kexp.tasks.seq2seq.translation import by_source, scores, translate
from kexp.training.callbacks import PeriodicScores

NAMES = ("val_bleu", "val_chrf")


class BleuMonitor(PeriodicScores):
    """val_bleu and val_chrf of greedy translations of `pairs` (the validation split)."""

    def __init__(self, translation: Translation, pairs: list[tuple[str, str]], every: int,
                 history: dict[str, list[float]] | None = None, batch_size: int = 64) -> None:
        super().__init__(every, NAMES, history)
        self.translation, self.batch_size = translation, batch_size
        self.sources, self.references = by_source(pairs)
        self.decoder: Any = None

    def score(self) -> dict[str, float]:
        from kexp.decoding import Decoder

        # one compiled loop for the whole run: the weights change, the graph does not
        self.decoder = self.decoder or Decoder(self.model, self.translation.target_length)
        hypotheses, _ = translate(self.model, self.translation, self.sources, self.batch_size,
                                  decoder=self.decoder)
        found = scores(hypotheses, self.references, self.translation.target.lowercase)
        return {"val_bleu": found["bleu"], "val_chrf": found["chrf"]}
