"""task=language_model end to end: a tiny model learns a generated text (bits per character
below the text's unigram entropy), the run's files and MLflow record, kexp.generate and
kexp.eval from the finished run, and bad input in one line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import compose_train
from tests.test_e2e import client, run_dirs

SENTENCES = ["the cat sat on the mat. ", "a dog ran to the park. ", "we saw the sea today. "]
TINY = ["task=language_model", "trainer.verbose=0", "trainer.batch_size=32",
        "data.context=24", "data.epoch_tokens=6000", "task.sample_length=40",
        "callbacks.early_stopping.enabled=false"]


def corpus(path: Path, sentences: int = 1500, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    path.write_text("".join(SENTENCES[i] for i in rng.integers(0, 3, sentences)),
                    encoding="utf-8")
    return path


def unigram_bits(text: str) -> float:
    counts = np.array(list(Counter(text).values()), np.float64)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> tuple[dict, Path, Path, Path]:
    from kexp.recipe import train

    root = tmp_path_factory.mktemp("lm")
    text = corpus(root / "book.txt")
    logs = root / "logs"
    cfg = compose_train([*TINY, f"data.path={text}", f"paths.log_dir={logs}", "model=gru",
                         "model.units=64", "model.embedding_dim=32", "trainer.epochs=3",
                         "optimizer.lr=0.01"])
    metrics = train(cfg)
    return metrics, run_dirs(logs)[-1], logs, text


def test_a_gru_learns_the_text_and_reports_bits_per_character(lm_run):
    metrics, run, _, text = lm_run
    floor = unigram_bits(text.read_text(encoding="utf-8"))
    assert metrics["test_bits_per_char"] < 0.6 * floor, (metrics, floor)
    # one cross-entropy behind every number
    assert math.isclose(metrics["test_bits_per_token"], metrics["test_bits_per_char"])
    assert math.isclose(metrics["test_perplexity"],
                        math.exp(metrics["test_nats_per_token"]), rel_tol=1e-4)
    assert math.isclose(metrics["test_bits_per_char"],
                        metrics["test_nats_per_token"] / math.log(2), rel_tol=1e-4)
    assert metrics["tokens_per_second"] > 0
    assert metrics["stopped_on_time"] is False
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test_bits_per_char"] == metrics["test_bits_per_char"]


def test_the_run_keeps_its_vocabulary_and_a_sample_per_epoch(lm_run):
    _, run, logs, _ = lm_run
    vocabulary = json.loads((run / "vocabulary.json").read_text(encoding="utf-8"))
    assert vocabulary["unit"] == "char" and set("the cat.") <= set(vocabulary["tokens"])
    samples = sorted((run / "samples").glob("epoch_*.txt"))
    assert [p.name for p in samples] == ["epoch_001.txt", "epoch_002.txt", "epoch_003.txt"]
    final = (run / "sample.txt").read_text(encoding="utf-8")
    assert len(final) > 40
    mlflow = client(logs)
    (found,) = mlflow.search_runs(mlflow.get_experiment_by_name("kexp").experiment_id)
    logged = {a.path for a in mlflow.list_artifacts(found.info.run_id, "samples")}
    assert "samples/epoch_003.txt" in logged
    assert found.data.metrics["test_bits_per_char"] > 0


def test_generate_continues_a_prompt_from_the_finished_run(lm_run, tmp_path):
    from kexp.tasks.language_model.samples import generate

    _, run, _, _ = lm_run
    path, texts, speed = generate(run, "the ", n=3, length=30, temperature=0.0, top_k=0,
                                  top_p=1.0, seed=0, out=tmp_path)
    assert len(texts) == 3 and all(t.startswith("the ") and len(t) == 34 for t in texts)
    assert len(set(texts)) == 1  # greedy: the same continuation every time
    assert texts[0][4:] in (path.read_text(encoding="utf-8"))
    assert speed > 0
    _, sampled, _ = generate(run, "", n=4, length=30, temperature=1.0, top_k=5, top_p=0.9,
                             seed=1, out=tmp_path)
    assert len(sampled) == 4 and all(len(t) == 30 for t in sampled)


def test_kexp_eval_reproduces_the_test_numbers(lm_run):
    from kexp.recipe import evaluate

    metrics, run, _, _ = lm_run
    again = evaluate(run)
    assert math.isclose(again["test_bits_per_token"], metrics["test_bits_per_token"],
                        rel_tol=1e-5)


def test_bad_prompt_and_bad_data_fail_in_one_line(lm_run, tmp_path):
    _, run, _, _ = lm_run
    done = subprocess.run([sys.executable, "-m", "kexp.generate", f"run_dir={run}",
                           "prompt=The Zebra", "length=5"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "'T'" in lines[0] and "'Z'" in lines[0] and "prompt" in lines[0]


def test_a_classification_data_set_or_a_pooling_model_is_refused(tmp_path):
    from kexp.errors import KexpError
    from kexp.recipe import train

    cfg = compose_train(["task=language_model", "data=digits", f"paths.log_dir={tmp_path}",
                         "model=lstm"])
    with pytest.raises(KexpError, match="task=language_model reads a text corpus"):
        train(cfg)
    text = corpus(tmp_path / "t.txt", 200)
    cfg = compose_train([*TINY, f"data.path={text}", f"paths.log_dir={tmp_path}", "model=mlp"])
    with pytest.raises(KexpError):
        train(cfg)


def test_the_report_shows_the_final_sample_beside_the_curves(lm_run, tmp_path):
    from kexp.tracking import runs
    from kexp.tracking.report_page import write_report

    _, run, logs, _ = lm_run
    uri = f"sqlite:///{logs}/mlflow.db"
    frame = runs.load_runs(uri, "kexp")
    page = write_report(frame, uri, "kexp", tmp_path / "report.html").read_text()
    final = (run / "sample.txt").read_text(encoding="utf-8")
    assert "<pre>" in page and final[:20] in page and 'alt="best_run"' in page
    assert "test_bits_per_token" in page and "test_perplexity" in page
