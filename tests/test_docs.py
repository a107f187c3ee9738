"""The docs cannot drift: the configuration reference is regenerated and compared, and every
command the README shows is run (the fast ones: their config composed and checked exactly as
`python -m kexp` would, no training) or named with the test that runs it."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import numpy as np
import pytest

from kexp.config import reference as config_reference
from tests.conftest import ROOT

README = ROOT / "README.md"
# module (or console script) -> (module, its top-level config)
MODULES = {name: (module, config) for module, config in (
    ("kexp", "train"), ("kexp.tune", "tune"), ("kexp.eval", "eval"), ("kexp.sync", "sync"),
    ("kexp.report", "report"), ("kexp.generate", "generate"), ("kexp.stylize", "stylize"),
    ("kexp.translate", "translate"), ("kexp.export", "export"))
    for name in (module, module.replace(".", "-"))}
# commands that need a finished run, a server or a second machine: the tests that run them
RUN_ELSEWHERE = {
    "python -m kexp.eval run_dir=": "test_e2e.py::test_eval_reproduces_the_test_metrics",
    "python -m kexp resume=":
        "test_resume.py::test_a_killed_run_resumes_to_the_uninterrupted_result",
    "python -m kexp from_run=":
        "test_e2e.py::test_from_run_repeats_a_logged_run_as_a_new_linked_run",
    "python -m kexp.sync run_dir=":
        "test_tracking_faults.py::test_store_lost_mid_run_then_synced_once",
    "python -m kexp.generate run_dir=":
        "test_gan.py::test_generate_writes_the_files_other_tools_read",
    "python -m kexp.translate run_dir=":
        "test_seq2seq.py::test_kexp_translate_reverses_a_sentence_and_a_file",
    "python -m kexp.export run_dir=":
        "test_export.py::test_the_command_prints_size_and_agreement_and_bad_input_is_one_line",
    "python -m kexp.stylize content=":
        "test_stylize.py::test_end_to_end_as_a_subprocess_and_as_one_mlflow_run",
    "python -m kexp --config-dir my_conf task=":
        "test_docs.py::test_the_readme_task_example_trains_and_reports_its_metric",
    "python -m kexp --config-dir my_conf":
        "test_docs.py::test_the_readme_model_family_example_composes_and_builds",
}


def readme_commands() -> list[str]:
    """Every command line in the README's indented code blocks (comments dropped)."""
    commands = []
    for line in README.read_text().splitlines():
        if not line.startswith("    "):
            continue
        command = line.strip().split("  #", 1)[0].strip()
        if re.match(r"^(python -m kexp|kexp|make )", command):
            commands.append(command)
    return commands


def test_configuration_reference_is_generated_from_conf():
    assert (ROOT / "docs" / "configuration.md").read_text() == config_reference.render(), \
        "docs/configuration.md is out of date: run `make docs`"


def test_every_make_target_in_the_readme_exists():
    for command in readme_commands():
        if command.startswith("make "):
            target = command.split()[1]
            done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True,
                                  text=True)
            assert done.returncode == 0, (command, done.stderr)


@pytest.fixture(scope="module")
def user_files(tmp_path_factory) -> dict[str, str]:
    """Stand-ins for the README's example paths (/data/pets, /data/arrays.npz)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("readme_data")
    for name in ("cat", "dog"):
        (root / "pets" / name).mkdir(parents=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "pets" / name / "0.png")
    x = np.zeros((4, 8, 8), np.uint8)
    np.savez(root / "arrays.npz", x_train=x, y_train=np.arange(4) % 2, x_test=x,
             y_test=np.arange(4) % 2)
    (root / "houses.csv").write_text("rooms,city,price\n3,york,200\n4,leeds,250\n")
    (root / "iris.csv").write_text("petal,species\n1.4,setosa\n4.7,versicolor\n")
    (root / "corpus").mkdir()
    (root / "corpus" / "a.txt").write_text("It is a truth universally acknowledged.\n")
    (root / "book.txt").write_text("It is a truth universally acknowledged.\n")
    (root / "fra-eng.tsv").write_text("I am cold.\tJ'ai froid.\n")
    return {"/data/fra-eng.tsv": str(root / "fra-eng.tsv"),
            "/data/book.txt": str(root / "book.txt"), "/data/corpus": str(root / "corpus"),
            "/data/pets": str(root / "pets"), "/data/arrays.npz": str(root / "arrays.npz"),
            "/data/houses.csv": str(root / "houses.csv"), "/data/iris.csv": str(root / "iris.csv")}


def test_every_kexp_command_in_the_readme_composes_and_validates(user_files, monkeypatch):
    from kexp.cli import precheck

    checked = 0
    for command in readme_commands():
        if command.startswith("make "):
            continue
        elsewhere = [test for prefix, test in RUN_ELSEWHERE.items() if command.startswith(prefix)]
        if elsewhere:
            file, name = elsewhere[0].split("::")
            assert f"def {name}(" in (ROOT / "tests" / file).read_text(), elsewhere[0]
            continue
        for path, stand_in in user_files.items():
            command = command.replace(path, stand_in)
        words = shlex.split(command)
        words = words[2:] if words[0] == "python" else words  # "python -m kexp" or "kexp"
        (module, config_name), args = MODULES[words[0]], words[1:]
        if module == "kexp.report":  # its experiment=NAME shorthand, as its main() reads it
            from kexp.cli.report import experiment_shorthand

            args = experiment_shorthand(args)
        if "--help" in args:  # Hydra's own: run it as the user would
            done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                                  text=True, cwd=ROOT, timeout=60)
            assert done.returncode == 0, (command, done.stderr)
            checked += 1
            continue
        if "-m" in args:  # a sweep: every value of every swept key, one job's config each
            swept = [a for a in args if a != "-m"]
            jobs = max(len(a.split("=", 1)[1].split(",")) for a in swept if "=" in a)
            args_list = [[_pick(a, j) for a in swept] for j in range(jobs)]
        else:
            args_list = [args]
        monkeypatch.chdir(ROOT)
        for job_args in args_list:
            try:
                precheck([*job_args, "--cfg", "job"], config_name)  # one line + exit if wrong
            except SystemExit as exc:
                pytest.fail(f"README command fails: {command}: exit {exc.code}")
        checked += 1
    assert checked >= 20


def _pick(override: str, job: int) -> str:
    """The value of a swept override (`k=a,b`) that sweep job `job` gets."""
    key, sep, values = override.partition("=")
    if not sep:
        return override
    options = values.split(",")
    return f"{key}={options[min(job, len(options) - 1)]}"


def test_the_readme_model_family_example_composes_and_builds(tmp_path, monkeypatch):
    """The worked example of "Add a model family", as written: its files, its command."""
    from kexp import models

    cfg = compose_readme_example("Add a model family", tmp_path, monkeypatch)
    model = models.build(cfg.model, (8, 8, 1), 10, allow_targets=["mypkg"])
    assert model.name == "tiny_cnn" and model.output_shape == (None, 10)
    assert model.layers[1].filters == 32  # the command's model.filters=32


def compose_readme_example(section_title: str, where, monkeypatch, extra=()):
    """A README worked example as written: its files under `where`, its command prechecked as
    the CLI would, and the training config it composes (plus `extra` overrides)."""
    from hydra import compose, initialize_config_dir

    from kexp.cli import config_dir, precheck

    command = write_readme_example(section_title, where)
    for name in [m for m in sys.modules if m.split(".")[0] == "mypkg"]:  # another test's mypkg
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.chdir(where)
    monkeypatch.syspath_prepend(str(where))  # `python -m` puts the working directory first
    args = shlex.split(command)[3:]
    try:
        precheck([*args, "--cfg", "job"], "train")
    except SystemExit as exc:
        pytest.fail(f"README command fails: {command}: exit {exc.code}")
    overrides = [a for a in args if not a.startswith("--config-dir") and a != "my_conf"]
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        return compose("train", [*overrides, f"hydra.searchpath=[file://{where / 'my_conf'}]",
                                 *extra])


def write_readme_example(section_title: str, where) -> str:
    """The python and yaml files of a README section, written under `where` as they are
    named there; returns the section's `python -m kexp --config-dir` command."""
    section = README.read_text().split(f"## {section_title}", 1)[1].split("\n## ", 1)[0]
    for kind in ("python", "yaml"):
        match = re.search(rf"```{kind}\n# (\S+)\n(.*?)```", section, re.S)
        (where / match[1]).parent.mkdir(parents=True, exist_ok=True)
        (where / match[1]).write_text(match[2])
    (where / "mypkg" / "__init__.py").write_text("")
    return next(line.strip() for line in section.splitlines()
                if line.startswith("    python -m kexp --config-dir"))


@pytest.mark.slow
def test_the_readme_task_example_trains_and_reports_its_metric(tmp_path, monkeypatch):
    """The worked example of "Add a task", as written, run for one tiny epoch."""
    from kexp.recipe import train

    cfg = compose_readme_example("Add a task", tmp_path, monkeypatch, [
        "trainer.epochs=1", "data.subset=256", "logger=none", "trainer.verbose=0",
        f"paths.log_dir={tmp_path / 'logs'}"])
    metrics = train(cfg)
    assert 0 <= metrics["test_accuracy"] <= metrics["test_top3"] <= 1
    assert "best_val_top3" in metrics
