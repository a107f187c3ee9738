"""Translating with a trained encoder-decoder and judging the result: greedy decoding or beam
search through kexp.decoding (the language model's loop, conditioned on the source), corpus
BLEU and chrF from sacreBLEU, and the test examples as an HTML table.

sacreBLEU is the field's standard (Post, 2018): it tokenizes hypotheses and references itself
(13a), so the numbers compare with published ones, and its signature string records how they
were computed. Each distinct test source is translated once and scored against every target
the file gives it (sacreBLEU's variable number of references: "nrefs:var" in the signature
where they differ), since a model cannot know which of several translations a line holds.
The references are the target sentences as the data file has them (after NFC); with
`data.lowercase` the model writes lowercase, so BLEU and chrF are then computed
case-insensitively, which the signature records ("case:lc").
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from kexp.data.pairs import END_ID, START_ID, Translation

EXAMPLES_FILE = "translations.html"
TSV_FILE = "test_translations.tsv"


def translate(model: Any, translation: Translation, sources: list[str], batch_size: int = 64,
              key: str = "text", decoder: Any = None, beam: int = 1,
              length_penalty: float = 0.6) -> tuple[list[str], float]:
    """Translations of `sources` (texts), greedy (`beam` 1) or by beam search, and the
    decoding speed in target tokens per second. One Decoder (one trace per batch size and
    kind of search) serves every batch."""
    from kexp.decoding import Decoder

    if not sources:
        return [], float("nan")
    decoder = decoder or Decoder(model, translation.target_length)
    ids = np.asarray([translation.encode_source(s, key) for s in sources], np.int32)
    out, seconds, written = [], 0.0, 0
    for start in range(0, len(ids), batch_size):
        source = ids[start:start + batch_size]
        length = translation.target_length - 1
        decoded = (decoder([START_ID], n=len(source), length=length, temperature=0.0,
                           source=source) if beam == 1 else
                   decoder.beam([START_ID], n=len(source), length=length, beam=beam,
                                length_penalty=length_penalty, end_id=END_ID, source=source))
        seconds += decoded.seconds
        texts = [translation.decode_target(row) for row in decoded.ids]
        written += sum(len(translation.target.split(t)) + 1 for t in texts)
        out.extend(texts)
    return out, written / seconds if seconds > 0 else float("nan")


def scores(hypotheses: list[str], references: list[list[str]], lowercase: bool
           ) -> dict[str, Any]:
    """Corpus BLEU and chrF (sacreBLEU) of one hypothesis per source against every reference
    translation of that source (any number each), and their signatures."""
    from sacrebleu.metrics import BLEU, CHRF

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    most = max(len(r) for r in references)
    # sacreBLEU's streams: reference k of every sentence, None where a sentence has fewer
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(most)]
    bleu, chrf = BLEU(lowercase=lowercase), CHRF(lowercase=lowercase)
    return {"bleu": float(bleu.corpus_score(hypotheses, streams).score),
            "chrf": float(chrf.corpus_score(hypotheses, streams).score),
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature())}


def by_source(pairs: list[tuple[str, str]]) -> tuple[list[str], list[list[str]]]:
    """The distinct sources of `pairs` in order and all the targets each has (an Anki file
    holds several translations of one sentence: each is a valid reference)."""
    grouped: dict[str, list[str]] = {}
    for source, target in pairs:
        grouped.setdefault(source, []).append(target)
    return list(grouped), list(grouped.values())


def write_examples(pairs: list[tuple[str, str]], hypotheses: dict[str, list[str]], out: Path,
                   shown: int) -> list[Path]:
    """Every test translation of each search in `hypotheses` ("greedy", "beam 4" ...) as a
    TSV (source, reference, hypothesis): test_translations.tsv for the first search,
    test_translations_beam.tsv for a second; the first `shown` sources as one HTML table
    with a column per search."""
    files = []
    for k, found in enumerate(hypotheses.values()):
        tsv = out / (TSV_FILE if k == 0 else TSV_FILE.replace(".tsv", "_beam.tsv"))
        tsv.write_text("source\treference\thypothesis\n" + "".join(
            f"{s}\t{r}\t{h}\n" for (s, r), h in zip(pairs, found, strict=True)),
            encoding="utf-8")
        files.append(tsv)
    names = ["source", "reference", *(f"model ({name})" for name in hypotheses)]
    rows = [(s, r, *(found[i] for found in hypotheses.values()))
            for i, (s, r) in enumerate(pairs[:shown])]
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n"
                    for row in rows)
    header = "".join(f"<th>{html.escape(name)}</th>" for name in names)
    page = out / EXAMPLES_FILE
    page.write_text(f"<!doctype html><meta charset='utf-8'><title>test translations</title>\n"
                    f"<table border=1 cellpadding=4><tr>{header}</tr>\n{cells}</table>\n",
                    encoding="utf-8")
    return [page, *files]


def translate_run(folder: str | Path, texts: list[str], batch_size: int = 64,
                  unsafe_load: bool = False, beam: int = 1, length_penalty: float = 0.6
                  ) -> tuple[list[str], float]:
    """`kexp.translate`: the finished task=seq2seq run in `folder` translates `texts`."""
    from kexp import run_dir
    from kexp.models import load_model

    folder = run_dir.finished_run(folder)
    translation = Translation.load(folder)
    model = load_model(folder / run_dir.MODEL_FILE, safe_mode=not unsafe_load, compile=False)
    return translate(model, translation, texts, batch_size, beam=beam,
                     length_penalty=length_penalty)
