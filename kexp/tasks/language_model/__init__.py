"""`task=language_model`: predict the next token of a text (kexp.tasks.language_model.task),
judged in bits per token and perplexity; text sampled from a run with kexp.decoding
(samples: `python -m kexp.generate`, and a sample after every epoch)."""

from kexp.tasks.language_model.task import LanguageModel

__all__ = ["LanguageModel"]
