"""Text from a language model: a sample after every epoch (EpochSamples), the final sample
of a run, and `python -m kexp.generate` on a finished run (`generate`). All decode with
kexp.decoding; the vocabulary is the run's vocabulary.json."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from kexp import run_dir
from kexp.errors import KexpError

if TYPE_CHECKING:
    from kexp.data import DataBundle
    from kexp.data.tokenizer import Tokenizer

GENERATED_FILE = "generated.txt"
SEPARATOR = "\n\n----- sample {k} -----\n\n"  # between the samples of generated.txt


def save_vocabulary(tokenizer: Tokenizer, out: Path) -> Path:
    """The run's vocabulary.json, which kexp.generate and kexp.eval read."""
    from kexp.data.tokenizer import VOCABULARY_FILE

    out.mkdir(parents=True, exist_ok=True)
    tokenizer.save(out / VOCABULARY_FILE)
    return out / VOCABULARY_FILE


def decode(model: keras.Model, tokenizer: Tokenizer, prompt: list[int], n: int, length: int,
           temperature: float, top_k: int = 0, top_p: float = 1.0, seed: int = 0,
           decoder: Any = None) -> tuple[list[str], float]:
    """`n` continuations of `prompt` (ids), prompt included, and the tokens per second.
    An empty prompt starts from a token drawn from the training split's token counts."""
    from kexp.decoding import Decoder

    decoder = decoder or Decoder(model, model.input_shape[1])
    if prompt:
        prompts = np.asarray([prompt] * n, np.int32)
    else:
        counts = np.asarray(tokenizer.counts, np.float64)
        counts[:2] = 0  # neither padding nor the out-of-vocabulary token starts a text
        first = np.random.default_rng(seed).choice(len(counts), size=n, p=counts / counts.sum())
        prompts, length = first[:, None].astype(np.int32), max(0, length - 1)
    result = decoder(prompts, n, length, temperature, top_k, top_p, seed)
    rows = np.concatenate([prompts, result.ids], axis=1)
    return [tokenizer.decode(row.tolist()) for row in rows], result.tokens_per_second


def sample_text(model: keras.Model, tokenizer: Tokenizer, prompt: list[int], length: int,
                temperature: float, seed: int = 0) -> tuple[str, float]:
    """One sample of `length` tokens after `prompt`, and the tokens per second."""
    texts, speed = decode(model, tokenizer, prompt, 1, length, temperature, seed=seed)
    return texts[0], speed


class EpochSamples(keras.callbacks.Callback):
    """After every epoch, a sample from a fixed prompt and seed: samples/epoch_NNN.txt in the
    run directory and the same file as an MLflow artifact (under samples/)."""

    def __init__(self, data: DataBundle, folder: Path, tracker: Any, prompt: list[int],
                 length: int, temperature: float, seed: int = 0) -> None:
        super().__init__()
        self.tokenizer, self.folder, self.tracker = data.tokenizer, folder, tracker
        self.prompt, self.length, self.temperature, self.seed = prompt, length, temperature, seed
        self._decoder = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        from kexp.decoding import Decoder

        self._decoder = self._decoder or Decoder(self.model, self.model.input_shape[1])
        texts, _ = decode(self.model, self.tokenizer, self.prompt, 1, self.length,
                          self.temperature, seed=self.seed, decoder=self._decoder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"epoch_{epoch + 1:03d}.txt"
        path.write_text(texts[0], encoding="utf-8")
        self.tracker.log_artifact(path, self.folder.name)


def generate(folder: str | Path, prompt: str, n: int, length: int, temperature: float,
             top_k: int, top_p: float, seed: int, out: str | Path | None = None,
             unsafe_load: bool = False) -> tuple[Path, list[str], float]:
    """`n` samples of `length` tokens from the language-model run in `folder`, after
    `prompt`, written to `out` (default: the run directory) as generated.txt; returns the
    file, the texts and the decoding speed in tokens per second."""
    from kexp.data.tokenizer import VOCABULARY_FILE, Tokenizer
    from kexp.models import load_model

    folder = run_dir.finished_run(folder)
    vocabulary = folder / VOCABULARY_FILE
    if not vocabulary.exists():
        raise KexpError(f"run_dir: '{folder}' has no {VOCABULARY_FILE}; is it a "
                        f"task=language_model run?")
    tokenizer = Tokenizer.load(vocabulary)
    ids = tokenizer.encode(prompt, strict_key="prompt") if prompt else []
    model = load_model(folder / run_dir.MODEL_FILE, safe_mode=not unsafe_load, compile=False)
    texts, speed = decode(model, tokenizer, ids, n, length, temperature, top_k, top_p, seed)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    path = out / GENERATED_FILE
    path.write_text("".join((SEPARATOR.format(k=k + 1) if k else "") + text
                            for k, text in enumerate(texts)) + "\n", encoding="utf-8")
    return path, texts, speed
