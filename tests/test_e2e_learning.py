"""One real learning run per model kind through `python -m kexp`: images and a user's text."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from kexp.models import load_model
from tests.conftest import compose_train, run_kexp
from tests.test_e2e import client, run_dirs

pytestmark = pytest.mark.slow

TOPICS = {
    "sport": "goal match team score coach league player season",
    "science": "atom cell energy theory experiment lab physics molecule",
    "food": "bread soup recipe taste kitchen cheese oven flavour",
}
FILLER = "the a of and to in is was it that this for on with as very new".split()


def write_topics_csv(path: Path, n: int = 900, seed: int = 0) -> Path:
    """Short texts whose topic shows in a few of their words, the rest shared filler."""
    rng = np.random.default_rng(seed)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for i in range(n):
            topic = list(TOPICS)[i % len(TOPICS)]
            words = list(rng.choice(TOPICS[topic].split(), 3)) + list(rng.choice(FILLER, 9))
            rng.shuffle(words)
            writer.writerow([" ".join(words).capitalize() + ".", topic])
    return path


@pytest.mark.parametrize("model", ["lstm", "transformer"])
def test_text_model_learns_a_users_csv(tmp_path, model):
    data = write_topics_csv(tmp_path / "topics.csv")
    done = run_kexp([f"model={model}", "data=text_csv", f"data.path={data}",
                     "data.sequence_length=16", "model.width=0.25", "trainer.epochs=6",
                     "trainer.batch_size=32"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = run_dirs(tmp_path / "logs")
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["test_accuracy"] >= 0.8  # chance is 1/3
    assert metrics["flops"] > 0 and metrics["params"] > 0
    c = client(tmp_path / "logs")
    (run,) = c.search_runs([c.get_experiment_by_name("kexp").experiment_id])
    assert run.data.metrics["flops"] == metrics["flops"]
    assert run.data.params["data.source"] == "text_csv"
    vocabulary = (folder / "vocabulary.txt").read_text().split()
    assert {"goal", "atom", "bread"} <= set(vocabulary)  # the words behind the token ids


def test_resnet_learns_digits(tmp_path):
    # 23 steps an epoch: batch norm's running statistics (momentum 0.99) need ~8 epochs to
    # catch up with the weights, however well the training split is already fitted
    done = run_kexp(["model=resnet20", "data=digits", "model.width=0.5", "trainer.epochs=10",
                     "logger=none"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (folder,) = run_dirs(tmp_path / "logs")
    assert json.loads((folder / "metrics.json").read_text())["test_accuracy"] >= 0.8  # chance 0.1


@pytest.mark.parametrize(("model", "data", "classes"), [
    ("transformer", "imdb_reviews", 2), ("bilstm", "ag_news_subset", 4)])
def test_text_model_on_tfds_text_through_the_mock(tmp_path, model, data, classes):
    import tensorflow_datasets as tfds

    from kexp.recipe import train

    cfg = compose_train([f"model={model}", f"data={data}", "debug=fast", "logger=none",
                         "model.width=0.25", "data.sequence_length=32",
                         f"paths.log_dir={tmp_path}"])
    with tfds.testing.mock_data(num_examples=64):  # random words, real feature layout
        metrics = train(cfg)
    assert metrics["epochs"] == 1 and metrics["flops"] > 0
    (saved,) = (tmp_path / "runs").glob("*/model.keras")
    assert (saved.parent / "vocabulary.txt").read_text().strip()
    model_out = load_model(saved).output_shape
    assert model_out == (None, classes)
