"""task=seq2seq over more than one run: the validation BLEU monitor (task.eval_every), a run
SIGKILLed in epoch 2 and resumed (bit for bit the uninterrupted one, its BLEU monitor
included) and a two-trial search=seq2seq judged by validation BLEU."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import compose_train, two_trial_search
from tests.test_e2e import run_dirs
from tests.test_resume import history, killed_and_resumed
from tests.test_seq2seq import TINY, reversal_pairs

pytestmark = pytest.mark.slow

SMALL = ["model=rnn_seq2seq", "model.units=32", "model.embedding_dim=16", "optimizer.lr=0.01"]
TIMING = {"wall_seconds", "examples_per_second", "seconds_to_first_step", "tokens_per_second",
          "decoding_tokens_per_second"}  # machine load


def test_val_bleu_every_k_epochs_can_be_the_monitor(tmp_path):
    from kexp.recipe import train

    pairs = reversal_pairs(tmp_path / "pairs.tsv", n=600)
    metrics = train(compose_train([
        *TINY, *SMALL, f"data.path={pairs}", f"paths.log_dir={tmp_path / 'logs'}",
        "trainer.epochs=5", "task.eval_every=2", "task.monitor=val_bleu", "task.mode=max"]))
    rows = history(run_dirs(tmp_path / "logs")[-1])
    bleu = [float(r["val_bleu"]) for r in rows]
    # scored after epochs 1 (the first), 2, 4 and 5 (the last); epoch 3 repeats epoch 2's
    assert len(bleu) == 5 and bleu[2] == bleu[1] and bleu[3] != bleu[2]
    assert all(0 <= float(r["val_chrf"]) <= 100 for r in rows)
    assert bleu[-1] > bleu[0]  # it learns to reverse, and BLEU sees it
    assert metrics["best_val_bleu"] == max(bleu)
    assert metrics["best_epoch"] == bleu.index(max(bleu)) + 1


def test_monitoring_val_bleu_without_eval_every_is_one_line():
    from kexp.errors import KexpError
    from kexp.tasks.seq2seq import Seq2Seq

    with pytest.raises(KexpError, match=r"^task.monitor: val_bleu is only logged with "
                                        r"task.eval_every set"):
        Seq2Seq.check_settings({"loss": "cross_entropy", "monitor": "val_bleu", "mode": "max",
                                "targets": "tokens", "eval_every": None})


def test_a_killed_translation_run_resumes_to_the_uninterrupted_result(tmp_path):
    pairs = reversal_pairs(tmp_path / "pairs.tsv", n=400)
    args = [*TINY, *SMALL, f"data.path={pairs}", "trainer.epochs=3", "task.eval_every=1",
            "trainer.deterministic=true", "trainer.verbose=2", "task.beam=2"]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    reference.mkdir(), interrupted.mkdir()
    run, expected = killed_and_resumed(args, interrupted, reference)
    got, want = history(run), history(expected)
    assert [row["epoch"] for row in got] == ["0", "1", "2"] and got == want
    assert "val_bleu" in got[0]
    after, before = ({k: v for k, v in json.loads((r / "metrics.json").read_text()).items()
                      if k not in TIMING} for r in (run, expected))
    assert "test_bleu_beam" in after and after == before
    for name in ("test_translations.tsv", "test_translations_beam.tsv", "vocabularies.json"):
        assert (run / name).read_text(encoding="utf-8") == \
            (expected / name).read_text(encoding="utf-8"), name


def test_a_translation_search_judged_by_val_bleu_completes_both_trials(tmp_path):
    pairs = reversal_pairs(tmp_path / "pairs.tsv", n=300)
    base = [*TINY, *SMALL, f"data.path={pairs}", "trainer.epochs=1", "task.eval_every=1",
            "task.monitor=val_bleu", "task.mode=max", f"paths.log_dir={tmp_path}"]
    _, scores, chosen = two_trial_search(base, "seq2seq", ("val_bleu", "max"))
    assert all(math.isfinite(s) and 0 <= s <= 100 for s in scores), scores
    assert chosen.model.attention in ("bahdanau", "luong_dot", "luong_general")
