"""YAML with positions: moved to ``cds.yamlio`` (the one YAML reader); re-exported here."""

from __future__ import annotations

from cds.yamlio import Path_, PositionedYaml, YamlSyntaxError, load_positioned

__all__ = ["Path_", "PositionedYaml", "YamlSyntaxError", "load_positioned"]
