"""`python -m kexp.translate run_dir=DIR text="..." | file=FILE`: the model of a finished
task=seq2seq run translates (greedy decoding, or beam search with `beam=k`,
kexp/tasks/seq2seq/translation.py); one
translation per line on standard output, the speed on standard error."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded
from kexp.config import is_int, is_number
from kexp.errors import KexpError


def sentences(cfg: DictConfig) -> list[str]:
    """What to translate, before TensorFlow loads: `text`, or the lines of `file`."""
    if not is_int(cfg.batch_size) or cfg.batch_size < 1:
        raise KexpError(f"batch_size: {cfg.batch_size!r} is not valid; expected a positive "
                        f"integer")
    if not is_int(cfg.beam) or cfg.beam < 1:
        raise KexpError(f"beam: {cfg.beam!r} is not valid; expected an integer >= 1 (1: greedy "
                        f"decoding, k > 1: beam search with k hypotheses)")
    if not is_number(cfg.length_penalty) or cfg.length_penalty < 0:
        raise KexpError(f"length_penalty: {cfg.length_penalty!r} is not valid; expected a "
                        f"number >= 0 (0: rank beams by plain log-probability)")
    if not isinstance(cfg.text, str):
        raise KexpError(f"text: {cfg.text!r} is not valid; expected a string, e.g. "
                        f'text="I am cold."')
    if cfg.file is None:
        if not cfg.text.strip():
            raise KexpError('text: nothing to translate; give text="..." or file=<sentences, '
                            'one per line>')
        return [cfg.text]
    if cfg.text:
        raise KexpError("text, file: give one of them, not both")
    path = Path(str(cfg.file)).expanduser()
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise KexpError(f"file: '{path}' does not exist") from None
    except UnicodeDecodeError as err:
        raise KexpError(f"file: '{path}' is not UTF-8 text (byte offset {err.start})") from None


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="translate")
def _hydra_main(cfg: DictConfig) -> None:
    def job() -> str:
        texts = sentences(cfg)
        import_tensorflow_quietly()
        from kexp.tasks.seq2seq.translation import translate_run

        real = [i for i, t in enumerate(texts) if t.strip()]
        found, speed = translate_run(cfg.run_dir, [texts[i] for i in real],
                                     int(cfg.batch_size), bool(cfg.unsafe_load),
                                     int(cfg.beam), float(cfg.length_penalty))
        out = [""] * len(texts)
        for i, translation in zip(real, found, strict=True):
            out[i] = translation
        print("\n".join(out), flush=True)
        return f"kexp.translate: {len(real)} sentences ({speed:.0f} target tokens/s)"

    print(run_guarded(job), file=sys.stderr, flush=True)


def main() -> None:
    precheck(sys.argv[1:], config_name="translate")
    _hydra_main()


if __name__ == "__main__":
    main()
