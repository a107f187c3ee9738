"""`make bench-tune`: Hyperband against random search at the same total epoch budget.

Both search the default space (learning rate, dropout, L1/L2, optimizer) for the MLP on the
bundled digits, in one process, one after the other: Hyperband first, then random search with
as many full-length trials as Hyperband's epochs pay for. It prints the best validation accuracy
each reached, the epochs each spent, and their ratios (random / Hyperband).

    python -m kexp.tuning.tuner_bench [max_epochs=9] [seed=0]
"""

from __future__ import annotations

import sys
import tempfile
import time


def run(tuner: str, overrides: list[str], log_dir: str) -> dict:
    from hydra import compose, initialize_config_module

    from kexp.tuning.search import tune

    # what `python -m kexp.tune` passes on to every trial: all but the tuner.* overrides
    base = ["logger=none", "trainer.verbose=0", "callbacks=none",
            *(o for o in overrides if not o.startswith("tuner."))]
    with initialize_config_module("kexp.conf", version_base="1.3"):
        cfg = compose("tune", overrides=[f"tuner={tuner}", *overrides, *base,
                                         f"paths.log_dir={log_dir}"])
    started = time.perf_counter()
    summary = tune(cfg, base)
    summary["seconds"] = time.perf_counter() - started
    return summary


def main(argv: list[str]) -> None:
    from kexp.environment import import_tensorflow_quietly

    args = dict(a.split("=", 1) for a in argv)
    max_epochs, seed = int(args.get("max_epochs", 9)), int(args.get("seed", 0))
    import_tensorflow_quietly()
    with tempfile.TemporaryDirectory() as tmp:
        hyper = run("hyperband", [f"tuner.max_epochs={max_epochs}", "tuner.factor=3",
                                  f"tuner.seed={seed}"], f"{tmp}/hyperband")
        budget = hyper["metrics"]["epochs_trained"]
        trials = max(1, budget // max_epochs)
        rand = run("random", [f"tuner.max_trials={trials}", f"trainer.epochs={max_epochs}",
                              f"tuner.seed={seed}"], f"{tmp}/random")
    rows = [("hyperband", hyper), ("random", rand)]
    print(f"\nbench-tune: MLP on digits, default space, max_epochs={max_epochs}, seed={seed}")
    print(f"{'tuner':10} {'trials':>6} {'epochs':>6} {'best val_acc':>12} {'seconds':>8}")
    for name, s in rows:
        m = s["metrics"]
        print(f"{name:10} {m['trials_completed']:>6} {m['epochs_trained']:>6} "
              f"{s['best_score']:>12.4f} {s['seconds']:>8.1f}")
    hm, rm = hyper["metrics"], rand["metrics"]
    print(f"ratio random/hyperband: epochs {rm['epochs_trained'] / hm['epochs_trained']:.2f}, "
          f"best val_accuracy {rand['best_score'] / hyper['best_score']:.3f}, "
          f"time {rand['seconds'] / hyper['seconds']:.2f}")


if __name__ == "__main__":
    main(sys.argv[1:])
