"""`python -m kexp.export run_dir=DIR format=saved_model|tflite [quantize=dynamic|float16]`:
a finished run's model for serving, checked against the Keras model on its test split."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from kexp.cli import import_tensorflow_quietly, precheck, run_guarded
from kexp.errors import KexpError

FORMATS = ("saved_model", "tflite")
QUANTIZE = ("dynamic", "float16")


def check_request(fmt: object, quantize: object) -> None:
    """`format` and `quantize` named in one line when they are not what kexp.export writes.

    Args:
        fmt: the `format` value.
        quantize: the `quantize` value (None: no quantization).
    """
    if fmt not in FORMATS:
        raise KexpError(f"format: {fmt!r} is not valid; expected one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZE:
        raise KexpError(f"quantize: {quantize!r} is not valid; expected one of "
                        f"{', '.join(QUANTIZE)} (or null)")
    if quantize is not None and fmt != "tflite":
        raise KexpError(f"quantize: {quantize} is for format=tflite (a SavedModel keeps "
                        f"float32 weights)")


@hydra.main(version_base="1.3", config_path="pkg://kexp.conf", config_name="export")
def _hydra_main(cfg: DictConfig) -> None:
    def job() -> list:
        from kexp.run_dir import finished_run

        check_request(cfg.format, cfg.quantize)
        finished_run(cfg.run_dir)  # no config.yaml or model.keras: one line, before TensorFlow
        import_tensorflow_quietly()
        from kexp.exporting import export

        return export(cfg.run_dir, cfg.format, cfg.quantize, cfg.batch_size, cfg.unsafe_load)

    for exported in run_guarded(job):
        print(exported.line())


def main() -> None:
    precheck(sys.argv[1:], config_name="export")
    _hydra_main()


if __name__ == "__main__":
    main()
