"""YAML reading for everything under rules/ and the config file.

PyYAML's C parser (libyaml, shipped in PyYAML's wheels) is several times faster than its
pure-Python one; rule files are read at every start and reload, so start-up time depends on
it. Both give the same data and the same line/column marks; the pure-Python loader is the
fallback where PyYAML was built without libyaml.
"""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` with the fastest safe loader available."""
    return yaml.load(text, Loader=SafeLoader)
