"""task=seq2seq end to end on generated pairs (reverse a word sequence, which an attention
model learns in seconds): BLEU from sacreBLEU near perfect, the run's files, kexp.translate
from the finished run, kexp.eval, and bad input in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import compose_train
from tests.test_e2e import run_dirs

WORDS = "red blue green black white pink gray gold".split()
TINY = ["task=seq2seq", "trainer.verbose=0", "trainer.batch_size=32", "logger=none",
        "callbacks.early_stopping.enabled=false", "data.val_fraction=0.1",
        "data.test_fraction=0.1"]


def reversal_pairs(path: Path, n: int = 1500, seed: int = 0) -> Path:
    """source: 2-6 random words; target: the same words in reverse order."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        words = list(rng.choice(WORDS, rng.integers(2, 7)))
        lines.append(f"{' '.join(words)}\t{' '.join(reversed(words))}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def seq2seq_run(tmp_path_factory) -> tuple[dict, Path]:
    from kexp.recipe import train

    root = tmp_path_factory.mktemp("seq2seq")
    pairs = reversal_pairs(root / "pairs.tsv")
    cfg = compose_train([*TINY, f"data.path={pairs}", f"paths.log_dir={root / 'logs'}",
                         "model=rnn_seq2seq", "model.attention=bahdanau", "model.units=64",
                         "model.embedding_dim=32", "trainer.epochs=12", "optimizer.lr=0.01",
                         "task.beam=3"])
    return train(cfg), run_dirs(root / "logs")[-1]


def test_an_attention_model_learns_to_reverse_and_bleu_says_so(seq2seq_run):
    metrics, run = seq2seq_run
    assert metrics["test_accuracy"] > 0.9, metrics
    assert metrics["test_bleu"] > 80 and metrics["test_chrf"] > 80, metrics
    assert metrics["tokens_per_second"] > 0
    assert json.loads((run / "metrics.json").read_text())["test_bleu"] == metrics["test_bleu"]
    signature = (run / "sacrebleu.txt").read_text(encoding="utf-8")
    assert "|case:lc|eff:no|tok:13a" in signature  # lowercase data: case-insensitive


def test_the_test_translations_are_kept_beside_their_references(seq2seq_run):
    _, run = seq2seq_run
    rows = (run / "test_translations.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "source\treference\thypothesis" and len(rows) > 50
    right = sum(r.split("\t")[2] in r.split("\t")[1].split(" | ") for r in rows[1:])
    assert right > 0.8 * (len(rows) - 1)
    page = (run / "translations.html").read_text(encoding="utf-8")
    assert page.count("<tr>") == 21  # the header and task.examples=20
    assert (run / "vocabularies.json").is_file()


def test_beam_search_translates_the_test_split_too(seq2seq_run):
    metrics, run = seq2seq_run
    assert metrics["test_bleu_beam"] > 80 and metrics["test_chrf_beam"] > 80, metrics
    rows = [r.split("\t") for r in
            (run / "test_translations_beam.tsv").read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["source", "reference", "hypothesis"]
    assert sum(r[2] in r[1].split(" | ") for r in rows[1:]) > 0.8 * (len(rows) - 1)
    assert "<th>model (beam 3)</th>" in (run / "translations.html").read_text(encoding="utf-8")
    lines = (run / "sacrebleu.txt").read_text(encoding="utf-8").splitlines()
    assert [line.split()[0] + line.split()[-1] for line in lines] == [
        "BLEU(greedy)", "chrF(greedy)", "BLEU3)", "chrF3)"]


def test_the_attention_of_a_reversing_model_runs_along_the_anti_diagonal(seq2seq_run):
    from kexp.data.pairs import Translation
    from kexp.models import load_model
    from kexp.tasks.seq2seq.attention import attention_weights

    _, run = seq2seq_run
    assert (run / "attention.png").stat().st_size > 1000
    model = load_model(run / "model.keras", compile=False)
    translation = Translation.load(run)
    words = "red blue green black white".split()
    source = np.asarray([translation.encode_source(" ".join(words))], np.int32)
    written = [2, *translation.target.encode(" ".join(reversed(words)))]  # [START] ...
    decoder = np.zeros((1, translation.target_length), np.int32)
    decoder[0, :len(written)] = written
    weights = attention_weights(model, source, decoder)[0]
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-5)
    assert np.abs(weights[:, len(words):]).max() < 1e-6  # padding gets no attention
    # writing the k-th word of the reversal, it looks at the k-th word from the end
    looked_at = weights[:len(words)].argmax(axis=-1).tolist()
    assert sum(a == len(words) - 1 - k for k, a in enumerate(looked_at)) >= 4, looked_at


def test_bleu_is_sacrebleus_corpus_bleu():
    import sacrebleu

    from kexp.tasks.seq2seq.translation import scores

    hyps, refs = ["the cat sat on the mat", "a dog"], ["the cat sat on a mat", "a dog ran"]
    found = scores(hyps, [[r] for r in refs], lowercase=False)
    assert math.isclose(found["bleu"], sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert math.isclose(found["chrf"], sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert scores(refs, [[r] for r in refs], lowercase=False)["bleu"] == pytest.approx(100.0)
    # a second reference for one sentence: "a dog ran" is now matched exactly
    two = scores(["the cat sat on a mat", "a dog ran"], [["the cat sat on a mat"],
                                                        ["a dog", "a dog ran"]], False)
    assert two["bleu"] == pytest.approx(100.0) and "nrefs:var" in two["bleu_signature"]


def test_every_source_is_translated_once_against_all_its_references():
    from kexp.tasks.seq2seq.translation import by_source

    sources, references = by_source([("Run!", "Cours !"), ("Go.", "Va !"),
                                     ("Run!", "Courez !")])
    assert sources == ["Run!", "Go."] and references == [["Cours !", "Courez !"], ["Va !"]]


def test_kexp_translate_reverses_a_sentence_and_a_file(seq2seq_run, tmp_path):
    _, run = seq2seq_run
    done = subprocess.run([sys.executable, "-m", "kexp.translate", f"run_dir={run}",
                           "text=Red blue gold"], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "gold blue red"
    lines = tmp_path / "in.txt"
    lines.write_text("green pink\n\nwhite black gray\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "kexp.translate", f"run_dir={run}",
                           f"file={lines}", "beam=3"], capture_output=True, text=True, timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["pink green", "", "gray black white"]


def test_a_source_longer_than_the_model_reads_is_one_line(seq2seq_run, tmp_path):
    _, run = seq2seq_run
    done = subprocess.run([sys.executable, "-m", "kexp.translate", f"run_dir={run}",
                           "text=" + " ".join(["red"] * 9)], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("kexp: error: text: 9 word tokens, longer than the 6")


def test_beam_zero_is_one_line_before_anything_loads(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kexp.translate", f"run_dir={tmp_path}",
                           "text=red", "beam=0"], capture_output=True, text=True,
                          timeout=180, cwd=tmp_path)
    assert done.returncode == 2 and done.stderr.strip() == (
        "kexp: error: beam: 0 is not valid; expected an integer >= 1 (1: greedy decoding, "
        "k > 1: beam search with k hypotheses)")


def test_kexp_eval_reproduces_the_test_loss(seq2seq_run):
    from kexp.recipe import evaluate

    metrics, run = seq2seq_run
    again = evaluate(run)
    assert math.isclose(again["test_loss"], metrics["test_loss"], rel_tol=1e-5)


def test_the_wrong_data_or_model_is_refused_in_one_line(tmp_path):
    from kexp.errors import KexpError
    from kexp.recipe import train

    cfg = compose_train(["task=seq2seq", "data=digits", f"paths.log_dir={tmp_path}"])
    with pytest.raises(KexpError, match="task=seq2seq reads sentence pairs"):
        train(cfg)
    pairs = reversal_pairs(tmp_path / "p.tsv", 100)
    cfg = compose_train([*TINY, f"data.path={pairs}", f"paths.log_dir={tmp_path}",
                         "model=lstm"])
    with pytest.raises(KexpError, match="task=seq2seq needs one: model=rnn_seq2seq"):
        train(cfg)
    cfg = compose_train(["model=rnn_seq2seq", "data=digits", f"paths.log_dir={tmp_path}"])
    with pytest.raises(KexpError, match="use it with task=seq2seq"):
        train(cfg)
