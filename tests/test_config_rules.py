"""Every key of every config group has a type and range rule, checked before TensorFlow loads.

One subprocess (`python -m tests.test_config_rules OUT.json`) composes every option of every
group in conf/ and tries, for each leaf key, a value out of its range (numbers: negative, zero
where it must be positive, above 1 for a fraction) or outside its set (choices, true/false:
`nope`). Each goes through the checks `python -m kexp` makes before it imports TensorFlow
(`cli.check_composed`, called in-process on the composed config with the key set as Hydra sets
an override: a subprocess per case would take minutes) and must exit with code 2 and exactly
one `kexp: error:` line naming the key. The subprocess ends with TensorFlow and Keras never
imported.

A key with no fixed range (free text, paths) is listed in FREE_TEXT with the reason; a key
whose default is null says nothing of its type and is given a value to try in PROBES; a new
key in neither, and not checked, fails `test_every_leaf_key_has_a_probe_or_a_reason`.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from kexp.cli import config_dir, group_options, groups
from kexp.config import check, model_family, validate
from kexp.errors import KexpError
from tests.conftest import ROOT

# Not checked by this test yet: the task's keys and the keys whose valid values the task
# decides (its metrics, its direction). kexp.tasks checks them (config.check_task); shrink
# this as their rules land. A group named here is skipped whole.
NOT_YET_CHECKED: dict[str, str] = {}

# Keys without a fixed set or range of values: nothing out of range to try.
FREE_TEXT = {
    "run_name": "a label for the MLflow run (typed: a string or null)",
    "model.name": "a label for run names and tags",
    "data.name": "a label, or the name of a TFDS dataset (any of its catalogue: tfds_source "
                 "names one it cannot find)",
    "data.data_dir": "a directory, created when TFDS downloads into it",
    "data.label_feature": "a feature of the TFDS dataset, checked against it when it loads",
    "data.text_column": "a column of the CSV, checked against its header when it loads",
    "data.label_column": "a column of the CSV, checked against its header when it loads",
    "data.target": "column name(s) of the CSV, checked against its header when it loads",
    "logger.experiment": "an MLflow experiment name",
    "callbacks.csv_logger.filename": "a file name in the run directory",
    "strategy.tpu": "a TPU name or grpc:// address (\"\": the local one)",
    "tuner.project_name": "a folder name under tuner.directory",
    "paths.output_dir": "Hydra fills it in",
    "task.sample_prompt": "any text, checked against the run's vocabulary when it loads",
    "search.space": "maps training keys (dots in them) to distributions, so no key=value "
                    "reaches its leaves; kexp.tuning.space.parse checks it as a whole",
}

# Numbers of any value: a value of another type is tried instead.
ANY_NUMBER = {
    "trainer.seed": "any integer seeds the run",
    "tuner.seed": "any integer seeds the search (${trainer.seed})",
}

# What to try where the default does not tell (null, a list of names, a path); `{file}`
# stands for an existing file.
PROBES = {
    "task.class_weights": ["[-1]", "[]"],
    "task.eval_every": ["0"],  # seq2seq's is null: no validation BLEU
    "model.depth": ["-1"],  # dcgan's is null: it follows the image size
    "model.ff_dim": ["0"],  # gpt's is null: 4 * embed_dim
    "optimizer.weight_decay": ["-1"],
    "optimizer.clipnorm": ["0"],
    "optimizer.clipvalue": ["0"],
    "trainer.backup.every_n_steps": ["0"],
    "trainer.max_minutes": ["0", "-1"],
    "trainer.profile_steps": ["[0,5]", "[5,2]", "[3]", "nope"],  # null: no trace
    "trainer.overfit_loss": ["0", "-1", "nope"],  # null: no overfit check
    "data.subset": ["0"],
    "data.epoch_tokens": ["0"],  # null: the training split's token count
    "data.max_tokens": ["-1"],  # null in text_file and tiny_shakespeare: every token
    "data.sentences": ["0", "nope"],  # null unless the model reads documents (model=han)
    "data.max_pairs": ["0"],  # null in parallel_text: every line
    "data.source_language": ["0"],  # null in ted_hrlr_translate: the supervised pair
    "data.target_language": ["0"],
    "data.mean": ["[nope]"],
    "data.std": ["[0]"],
    "data.path": ["/nonexistent/kexp-data"],
    "data.test_path": ["/nonexistent/kexp-test.csv"],
    "data.vocabulary_file": ["/nonexistent/kexp-vocabulary.txt"],
    "data.text_features": ["[]"],
    "data.columns": ["[]"],
    "strategy.devices": ["[nope]"],
    "strategy.cluster": ["[nope]"],
    "strategy.task_index": ["-1"],
    "logger.tracking_uri": ["nope://x", "postgresql://db/kexp"],
    "logger.register_model": ["''", "1"],  # null: not registered
    "paths.log_dir": ["{file}/logs"],
    "tuner.directory": ["{file}/tuning"],
    "tuner.num_initial_points": ["0"],
    "tuner.distributed.worker_id": ["chief-2"],
    "kexp.allow_targets": ["[1]"],
    "tags": ["nope"],
}

# Tried as well as the default probe: the edges a sign alone does not reach.
EXTRA = {
    "trainer.epochs": ["0"],
    "trainer.batch_size": ["0"],
    "trainer.verbose": ["3"],
    "optimizer.lr": ["0"],
    "optimizer.momentum": ["1.0"],
    "optimizer.beta_1": ["1.0"],
    "optimizer.beta_2": ["1.5"],
    "optimizer.rho": ["1.0"],
    "schedule.min_lr_ratio": ["1.5"],
    "schedule.start_ratio": ["0", "1.5"],
    "callbacks.reduce_lr.factor": ["1.0"],
    "model.dropout": ["1.0"],
    "model.recurrent_dropout": ["1.0"],
    "model.width": ["0"],
    "model.depth": ["0", "12"],
    "model.compression": ["1.5"],
    "data.val_fraction": ["0", "1.0"],
    "data.test_fraction": ["1.5"],
    "data.scale": ["0"],
    "data.channels": ["2"],
    "data.max_tokens": ["2"],
    "data.sequence_length": ["0"],
    "data.image_size": ["[0,8]", "[8]"],
    "tuner.max_trials": ["0"],
    "tuner.factor": ["1"],
}

# `???` keys the composed config needs filled to pass as it is
REQUIRED = {"data.path": "{file}", "data.target": "label"}

CONFIG = "tune"  # train.yaml plus the tuner's groups: every group composes under it
GLOBAL = ("experiment", "debug")  # @package _global_ presets: their keys are other groups'
TOP = "train.yaml"  # the group name reported for top-level keys (run_name, tags, ...)
EXISTING_FILE = str(Path(__file__).resolve())


def _exempt(key: str, table: dict[str, str]) -> str | None:
    return next((why for k, why in table.items() if key == k or key.startswith(k + ".")), None)


# ---------------------------------------------------------------- the walk (in the subprocess)


def _leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, raw value) of every leaf; an empty mapping and an exempt subtree are one."""
    if isinstance(node, dict) and (node or not prefix) and \
            _exempt(prefix[:-1], FREE_TEXT) is None:
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def _raw(group: str, option: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(config_dir() / group / f"{option}.yaml"),
                                  resolve=False)


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "list" if not value else f"list of {_kind(value[0])}"
    return "null" if value is None else type(value).__name__


def _own(group: str, option: str) -> tuple[list[str], dict[str, str]]:
    """The in-group yamls `option` inherits, and its leaf keys (with theirs) and their kinds."""
    raw = _raw(group, option)
    parents = [d for d in raw.pop("defaults", [])
               if isinstance(d, str) and d in group_options(group)]
    keys: dict[str, str] = {}
    for parent in parents:
        keys.update(_own(group, parent)[1])
    keys.update({k: _kind(v) for k, v in _leaves(raw)})
    return parents, keys


def _covered(group: str, option: str) -> bool:
    """A preset that only changes values of the yaml it inherits: its keys are tested there."""
    parents, _ = _own(group, option)
    if not parents:
        return False
    inherited: dict[str, str] = {}
    for parent in parents:
        inherited.update(_own(group, parent)[1])
    raw = _raw(group, option)
    raw.pop("defaults", None)
    return all(inherited.get(k) == _kind(v) for k, v in _leaves(raw))


def plan() -> list[list[str]]:
    """The compositions to make: each option of each group is in one, or covered by its parent
    (resnet56 by resnet); groups are zipped, so there are as many as the largest group has."""
    chosen = {g: [o for o in group_options(g) if not _covered(g, o)]
              for g in groups() if g not in GLOBAL and _exempt(g, NOT_YET_CHECKED) is None}
    return [[f"{g}={opts[i % len(opts)]}" for g, opts in chosen.items()]
            for i in range(max(len(opts) for opts in chosen.values()))]


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose(CONFIG, overrides=overrides, return_hydra_config=True)


def _text(text: str) -> str:
    return text.replace("{file}", EXISTING_FILE)


def _run(cfg, defaults) -> tuple[int | str, str]:
    """cli.check_composed on `cfg`: (exit code, or the exception's type when it was not one
    of kexp's one-line errors, and stderr)."""
    from kexp.cli import check_composed

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            check_composed(cfg, defaults)
            code: int | str = 0
        except SystemExit as exc:
            code = exc.code
        except Exception as exc:  # a traceback for the user: reported, not raised
            code = f"{type(exc).__name__}: {exc}"
    return code, err.getvalue()


@contextlib.contextmanager
def _set(cfg, key: str, value: Any) -> Iterator[None]:
    """`key` set to `value` as Hydra applies an override (a deep copy a case is too slow), and
    set back afterwards."""
    parent_key, _, leaf = key.rpartition(".")
    node = (OmegaConf.select(cfg, parent_key) if parent_key else cfg)._get_node(leaf)
    before = OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) \
        else node._value()
    OmegaConf.update(cfg, key, value, merge=True)
    try:
        yield
    finally:
        OmegaConf.update(cfg, key, before, merge=False)


def _probes(key: str, value: Any) -> list[str] | None:
    if key in PROBES:
        return PROBES[key] + EXTRA.get(key, [])
    kind = _kind(value)
    if kind in ("bool", "str", "dict"):
        found = ["nope"]
    elif kind in ("int", "float"):
        found = ["nope"] if key in ANY_NUMBER else ["-1"]
    elif kind in ("list of int", "list of float"):
        found = ["[-1]"]
    else:  # null, a list of names, a value that needs Hydra to resolve
        return None
    return found + EXTRA.get(key, [])


def walk() -> dict[str, Any]:
    """Every composition, every leaf key of it, every probe: what happened to each."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    started = time.monotonic()
    group_names = set(groups())
    result: dict[str, Any] = {"compositions": [], "baseline": [], "cases": [],
                              "unclassified": [], "seen": []}
    done: set[tuple[str, str, str]] = set()
    for overrides in plan():
        defaults = _compose(overrides)
        cfg = copy.deepcopy(defaults)
        for key, value in _leaves(OmegaConf.to_container(cfg, resolve=False)):
            if value == "???" and not key.startswith("hydra."):
                OmegaConf.update(cfg, key, _text(REQUIRED.get(key, "???")), merge=True)
        tree = OmegaConf.to_container(cfg, resolve=False)
        result["compositions"].append(overrides)
        result["baseline"].append([overrides, *_run(cfg, defaults)])
        family = model_family(OmegaConf.select(cfg, "model._target_", default=None)) or ""
        for key, _ in _leaves(OmegaConf.to_container(cfg, resolve=False)):
            head = key.split(".")[0]
            if head in ("hydra", *GLOBAL):
                continue
            group = head if head in group_names else TOP
            result["seen"].append(key)
            if _exempt(key, NOT_YET_CHECKED) or _exempt(key, FREE_TEXT):
                continue
            try:
                value = OmegaConf.select(cfg, key)
                value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
            except Exception:  # an interpolation only a Hydra app resolves
                value = None
            seen = (key, _kind(value), family if head == "model" else "")
            if seen in done:
                continue
            done.add(seen)
            probes = _probes(key, value)
            if probes is None:
                result["unclassified"].append([key, _kind(value), " ".join(overrides)])
                continue
            for text in probes:
                with _set(cfg, key, parser.parse_override(f"{key}={_text(text)}").value()):
                    code, err = _run(cfg, defaults)
                result["cases"].append({"group": group, "key": key, "value": text,
                                        "family": seen[2], "code": code, "stderr": err})
        assert OmegaConf.to_container(cfg, resolve=False) == tree, "a probe was left behind"
    result["seen"] = sorted(set(result["seen"]))
    result["modules"] = sorted(m for m in ("tensorflow", "keras") if m in sys.modules)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


if __name__ == "__main__":
    Path(sys.argv[1]).write_text(json.dumps(walk(), indent=1))
    sys.exit(0)


# ---------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("config_rules") / "walk.json"
    env = {k: v for k, v in os.environ.items()
           if k not in ("KEXP_DEBUG", "MLFLOW_TRACKING_URI", "TFDS_DATA_DIR")}
    env["KEXP_LOG_DIR"] = str(out.parent / "logs")
    done = subprocess.run([sys.executable, "-m", "tests.test_config_rules", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(out.read_text())


def test_tensorflow_is_never_imported(walked):
    assert walked["modules"] == [], f"imported by the checks: {walked['modules']}"


def test_every_composition_passes_as_it_is(walked):
    failed = [f"{' '.join(o)}: {code} {err.strip()}" for o, code, err in walked["baseline"]
              if code != 0 or err]
    assert not failed, "\n".join(failed)


def test_every_option_of_every_group_is_walked(walked):
    composed = {o for overrides in walked["compositions"] for o in overrides}
    for group in groups():
        if group in GLOBAL or _exempt(group, NOT_YET_CHECKED):
            continue
        for option in group_options(group):
            assert f"{group}={option}" in composed or _covered(group, option), \
                f"{group}={option} is neither composed nor covered by the yaml it inherits"


def test_global_presets_set_walked_keys(walked):
    """experiment and debug set keys of other groups; those are walked there."""
    seen = set(walked["seen"])
    for group in GLOBAL:
        for option in group_options(group):
            raw = _raw(group, option)
            raw.pop("defaults", None)
            for key, _ in _leaves(raw):
                assert key in seen or _exempt(key, NOT_YET_CHECKED), f"{group}={option}: {key}"


def test_every_leaf_key_has_a_probe_or_a_reason(walked):
    missing = [f"{key} ({kind}, in {where})" for key, kind, where in walked["unclassified"]]
    assert not missing, ("give these keys a value to try in PROBES (and a rule in "
                         "kexp.config.RULES), or a reason in FREE_TEXT:\n" + "\n".join(missing))


def test_exemptions_and_probes_name_keys_that_exist(walked):
    seen = set(walked["seen"])
    stale = [k for table in (FREE_TEXT, ANY_NUMBER, PROBES, EXTRA) for k in table
             if not any(s == k or s.startswith(k + ".") for s in seen)]
    assert not stale, f"no such key in conf/ any more: {stale}"


@pytest.mark.parametrize("group", [*[g for g in groups() if g not in GLOBAL], TOP])
def test_a_bad_value_is_one_line_naming_the_key(walked, group):
    if _exempt(group, NOT_YET_CHECKED):
        pytest.skip(NOT_YET_CHECKED[group])
    cases = [c for c in walked["cases"] if c["group"] == group]
    failed = []
    for case in cases:
        lines = case["stderr"].strip().splitlines()
        one_line = len(lines) == 1 and lines[0].startswith("kexp: error: ")
        if case["code"] != 2 or not one_line or case["key"] not in lines[0]:
            where = f" (model family {case['family']})" if case["family"] else ""
            failed.append(f"{case['key']}={case['value']}{where}: exit {case['code']}, "
                          f"stderr {case['stderr'].strip()!r}")
    assert not failed, f"{len(failed)} of {len(cases)} values got through:\n" + "\n".join(failed)


# ---------------------------------------------------------------- rules, one at a time


@pytest.mark.parametrize("uri", [
    None, "sqlite:///logs/mlflow.db", "sqlite:////abs/mlflow.db", "file:///tmp/mlruns",
    "file:mlruns", "http://127.0.0.1:5000", "https://mlflow.example.com", "databricks",
    "databricks://profile", "logs/mlruns", "/abs/mlruns", "C:\\mlruns",
])
def test_tracking_uris_mlflow_can_log_to_pass(uri):
    from kexp.tracking.store import check_scheme

    assert check("logger.tracking_uri", uri) == uri
    if uri is not None:
        assert check_scheme(uri) == uri


@pytest.mark.parametrize("uri", ["nope://x", "postgresql://db/kexp", "s3://bucket/x", "http://",
                                 "", "  ", 5])
def test_tracking_uris_mlflow_cannot_log_to_are_one_line(uri):
    from kexp.tracking.store import check_scheme

    with pytest.raises(KexpError) as caught:
        check_scheme(uri)
    message = str(caught.value)
    assert "\n" not in message and message.startswith("logger.tracking_uri: ")
    for scheme in ("sqlite", "file", "http", "https", "databricks", "plain path"):
        assert scheme in message


def test_model_rules_follow_the_family():
    for target, pooling, ok in [("kexp.models.rnn.rnn", "attention", True),
                                ("kexp.models.transformer.transformer", "attention", False),
                                ("kexp.models.transformer.transformer", "cls", True),
                                ("kexp.models.cnn.cnn", "avg", True),
                                ("kexp.models.tcn.tcn", "avg", False)]:
        cfg = OmegaConf.create({"model": {"_target_": target, "pooling": pooling}})
        if ok:
            validate(cfg)
        else:
            with pytest.raises(KexpError, match=f"^model.pooling: '{pooling}' is not valid"):
                validate(cfg)
    assert model_family("mypkg.models.net") is None
    assert check("model.depth", 110, "resnet") == 110
    with pytest.raises(KexpError, match="^model.depth: 110 is not valid; expected 11, 13, 16"):
        check("model.depth", 110, "vgg")


def test_check_takes_config_nodes_and_plain_values():
    assert check("schedule.milestones", OmegaConf.create([30, 60])) == [30, 60]
    with pytest.raises(KexpError, match=r"^schedule.milestones: \[0, 60\] is not valid"):
        check("schedule.milestones", OmegaConf.create([0, 60]))
    with pytest.raises(KeyError):
        check("no.such.key", 1)


def test_clipnorm_and_clipvalue_together_are_refused():
    validate(OmegaConf.create({"optimizer": {"clipnorm": 1.0, "clipvalue": None}}))
    with pytest.raises(KexpError, match="clipnorm and optimizer.clipvalue are both set"):
        validate(OmegaConf.create({"optimizer": {"clipnorm": 1.0, "clipvalue": 0.5}}))


def test_data_sources_are_the_loaders_kexp_data_has():
    import kexp.data
    from kexp.config import DATA_SOURCES

    assert sorted(DATA_SOURCES) == sorted(kexp.data.SOURCES)


def test_distributed_keeps_its_names_from_config():
    from kexp import config
    from kexp.tuning import distributed

    assert distributed.ROLES is config.ROLES
    assert distributed.parse_address("[::1]:8000") == ("::1", 8000)
    assert distributed.is_address("10.0.0.1:8000") and not distributed.is_address("10.0.0.1")
    assert "kexp.tuning" not in config.__dict__
