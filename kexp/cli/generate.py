"""`python -m kexp.generate run_dir=DIR ...`: what a finished run generates, one command for
every generating task. A GAN run: images (kexp/tasks/gan/samples.py; n, label, seed, out).
A language-model run: text after `prompt` (kexp/tasks/language_model/samples.py; n, length,
temperature, top_k, top_p, seed, out), printed and written to generated.txt."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded
from kexp.config import is_int, is_number
from kexp.errors import KexpError

IMAGES, TEXTS = 1000, 1  # the default n of each kind of run


def check(cfg: DictConfig) -> None:
    """The arguments, before TensorFlow loads."""
    if cfg.n is not None and (not is_int(cfg.n) or cfg.n < 1):
        raise KexpError(f"n: {cfg.n!r} is not valid; expected a positive integer (samples)")
    if cfg.label is not None and (not is_int(cfg.label) or cfg.label < 0):
        raise KexpError(f"label: {cfg.label!r} is not valid; expected a class number >= 0 or "
                        f"null")
    if not is_int(cfg.seed):
        raise KexpError(f"seed: {cfg.seed!r} is not valid; expected an integer")
    if not isinstance(cfg.prompt, str):
        raise KexpError(f"prompt: {cfg.prompt!r} is not valid; expected a string, e.g. "
                        f'prompt="It is a truth"')
    if not is_int(cfg.length) or cfg.length < 1:
        raise KexpError(f"length: {cfg.length!r} is not valid; expected a positive integer "
                        f"(tokens)")
    if not is_number(cfg.temperature) or cfg.temperature < 0:
        raise KexpError(f"temperature: {cfg.temperature!r} is not valid; expected a number "
                        f">= 0 (0: greedy)")
    if not is_int(cfg.top_k) or cfg.top_k < 0:
        raise KexpError(f"top_k: {cfg.top_k!r} is not valid; expected an integer >= 0 (0: all)")
    if not is_number(cfg.top_p) or not 0 < cfg.top_p <= 1:
        raise KexpError(f"top_p: {cfg.top_p!r} is not valid; expected a number in (0, 1]")


def is_language_model(folder: str) -> bool:
    """Whether the finished run in `folder` is a task=language_model run (its config.yaml)."""
    from omegaconf import OmegaConf

    from kexp.run_dir import CONFIG_FILE, finished_run

    task = OmegaConf.load(finished_run(folder) / CONFIG_FILE).get("task") or {}
    return str(task.get("_target_", "")).startswith("kexp.tasks.language_model")


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="generate")
def _hydra_main(cfg: DictConfig) -> None:
    def job() -> str:
        check(cfg)
        text = is_language_model(cfg.run_dir)  # no config.yaml or model.keras: one line
        import_tensorflow_quietly()
        if text:
            from kexp.tasks.language_model.samples import generate as write_text

            path, texts, speed = write_text(cfg.run_dir, cfg.prompt, cfg.n or TEXTS,
                                            cfg.length, cfg.temperature, cfg.top_k, cfg.top_p,
                                            cfg.seed, cfg.out, cfg.unsafe_load)
            print(path.read_text(encoding="utf-8"), end="", flush=True)
            return (f"kexp.generate: wrote {len(texts)} samples of {cfg.length} tokens to "
                    f"{path} ({speed:.0f} tokens/s)")
        if cfg.prompt:
            raise KexpError(f"prompt: the run in '{cfg.run_dir}' generates images; prompt= "
                            f"is for task=language_model runs")
        from kexp.tasks.gan.samples import generate

        n = cfg.n or IMAGES
        path = generate(cfg.run_dir, n, cfg.label, cfg.seed, cfg.out, cfg.unsafe_load)
        return f"kexp.generate: wrote {n} images to {path} and {path.with_suffix('.png')}"

    print(run_guarded(job), flush=True)


def main() -> None:
    precheck(sys.argv[1:], config_name="generate")
    _hydra_main()


if __name__ == "__main__":
    main()
