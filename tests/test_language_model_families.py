"""task=language_model with every backbone family a language model reads, under the
conditions a real run meets: each family learns the generated text, a tied head trains, a run
killed mid-epoch resumes to the uninterrupted result, and a two-trial search=lm completes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import compose_train, two_trial_search
from tests.test_e2e import run_dirs
from tests.test_language_model import TINY, corpus, unigram_bits
from tests.test_resume import history, killed_and_resumed

pytestmark = pytest.mark.slow

# small enough for seconds per epoch on two cores; each family's knobs named as in its yaml
FAMILIES = {
    "lstm": ["model=lstm", "model.units=64", "model.embedding_dim=32", "optimizer.lr=0.01"],
    "rnn": ["model=rnn", "model.units=64", "model.embedding_dim=32"],
    "tcn": ["model=tcn", "model.filters=48", "model.embedding_dim=32",
            "model.dilations=[1,2,4,8]"],
    "transformer": ["model=transformer", "model.num_blocks=1", "model.embed_dim=48",
                    "model.num_heads=2", "model.ff_dim=96", "model.dropout=0.0"],
    "gpt_mini": ["model=gpt_mini", "model.num_layers=1", "model.embed_dim=48",
                 "model.num_heads=2"],
}
TIMING = {"wall_seconds", "examples_per_second", "seconds_to_first_step", "tokens_per_second",
          "generation_tokens_per_second"}  # machine load


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    return corpus(tmp_path_factory.mktemp("lm_text") / "book.txt")


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_learns_the_text(family, text, tmp_path):
    from kexp.recipe import train

    cfg = compose_train([*TINY, "optimizer.lr=0.005", *FAMILIES[family], f"data.path={text}",
                         f"paths.log_dir={tmp_path}", "trainer.epochs=3", "logger=none"])
    metrics = train(cfg)
    floor = unigram_bits(text.read_text(encoding="utf-8"))
    # three sentences drawn at random: within a sentence every character is predictable
    assert metrics["test_bits_per_char"] < 0.6 * floor, (family, metrics, floor)
    assert metrics["val_bits_per_char"] < 0.6 * floor


def test_a_gpt_with_its_head_tied_to_the_token_embedding_learns(text, tmp_path):
    from kexp.recipe import train

    args = [*TINY, *FAMILIES["gpt_mini"], f"data.path={text}", f"paths.log_dir={tmp_path}",
            "trainer.epochs=3", "optimizer.lr=0.005", "logger=none"]
    tied = train(compose_train([*args, "task.tie_weights=true"]))
    assert tied["test_bits_per_char"] < 0.6 * unigram_bits(text.read_text(encoding="utf-8"))
    untied = train(compose_train(args))
    # the tied head has no (embed_dim, vocabulary) kernel or bias of its own
    vocabulary = len(json.loads((run_dirs(tmp_path)[-1] / "vocabulary.json").read_text(
        encoding="utf-8"))["tokens"])
    assert untied["params"] - tied["params"] == (48 + 1) * vocabulary


def test_a_killed_language_model_run_resumes_to_the_uninterrupted_result(text, tmp_path):
    args = [*TINY, *FAMILIES["gpt_mini"], f"data.path={text}", "trainer.epochs=3",
            "trainer.batch_size=16", "trainer.deterministic=true", "trainer.verbose=2",
            "logger=none"]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference.mkdir(), interrupted.mkdir()
    run, expected = killed_and_resumed(args, interrupted, reference)

    # the windows of every epoch were drawn from (seed, epoch): every number bit for bit
    got, want = history(run), history(expected)
    assert [row["epoch"] for row in got] == ["0", "1", "2"] and got == want
    after, before = ({k: v for k, v in json.loads((r / "metrics.json").read_text()).items()
                      if k not in TIMING} for r in (run, expected))
    assert "test_bits_per_char" in after and after == before
    for name in ("samples/epoch_001.txt", "samples/epoch_002.txt", "samples/epoch_003.txt",
                 "sample.txt", "vocabulary.json"):
        assert (run / name).read_text(encoding="utf-8") == \
            (expected / name).read_text(encoding="utf-8"), name


def test_a_language_model_search_completes_both_trials(text, tmp_path):
    base = [*TINY, *FAMILIES["lstm"], f"data.path={text}", "trainer.epochs=1", "logger=none",
            f"paths.log_dir={tmp_path}"]
    summary, scores, chosen = two_trial_search(base, "lm", ("val_bits_per_token", "min"))
    # validation bits per character: below log2 of the vocabulary once it learns
    assert all(math.isfinite(s) and 0 < s < math.log2(40) for s in scores), scores
    assert chosen.task._target_.endswith("LanguageModel")
    assert chosen.optimizer.lr == pytest.approx(summary["best_values"]["optimizer.lr"])
