"""The composed config as a tree on stdout at the start of a run (`trainer.verbose` > 0), as
lightning-hydra-template's print_config_tree does: each group a branch, each key `key: value`.

`--cfg job` still prints plain YAML: Hydra answers it before a run starts. No TensorFlow.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


def config_tree(cfg: DictConfig) -> Any:
    """A `rich.tree.Tree` of `cfg`, its interpolations resolved where they can be (outside a
    Hydra app `${hydra:...}` cannot: then every value is shown as written)."""
    from rich.tree import Tree

    try:
        plain = OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation only a running Hydra app resolves
        plain = OmegaConf.to_container(cfg, resolve=False)
    tree = Tree("[bold]config[/bold]", guide_style="dim")
    _add(tree, plain)
    return tree


def show_config(cfg: DictConfig) -> bool:
    """Print `cfg`'s tree when `trainer.verbose` > 0; whether it did."""
    if not int(OmegaConf.select(cfg, "trainer.verbose", default=0) or 0) > 0:
        return False
    from rich.console import Console

    # soft_wrap: a long value (a path, a list) stays on its line when stdout is a pipe or a file
    Console(soft_wrap=True).print(config_tree(cfg))
    return True


def _add(branch: Any, node: dict) -> None:
    from rich.markup import escape

    for key, value in node.items():
        if isinstance(value, dict) and value:
            _add(branch.add(f"[bold]{escape(str(key))}[/bold]"), value)
        else:
            branch.add(escape(f"{key}: {_text(value)}"))


def _text(value: Any) -> str:
    """A value as YAML writes it inline: null, true, [1, 2], {}."""
    import yaml

    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return yaml.safe_dump({"v": value}, width=10**6).strip()[len("v: "):]
