"""Configs: where they live and how one is composed (`compose.py`), and every check a
composed config gets before TensorFlow loads, each rule written once (`rules.py`); the
generated reference of every key is `reference.py` (`make docs`). No TensorFlow."""

from kexp.config.compose import CONFIG_MODULE, compose, config_dir, group_options, groups
from kexp.config.rules import (
    DATA_SOURCES,
    ROLES,
    RULES,
    STANDARDIZE,
    allowed_targets,
    allowlist_of,
    check,
    check_complete,
    check_target,
    import_target,
    is_address,
    is_int,
    is_number,
    model_family,
    parse_address,
    validate,
    validate_types,
)

__all__ = ["CONFIG_MODULE", "DATA_SOURCES", "ROLES", "RULES", "STANDARDIZE", "allowed_targets",
           "allowlist_of", "check", "check_complete", "check_target", "compose", "config_dir",
           "group_options", "groups", "import_target", "is_address", "is_int", "is_number",
           "model_family", "parse_address", "validate", "validate_types"]
