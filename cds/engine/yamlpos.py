"""YAML with positions: plain Python data plus the line/column of every node.

PyYAML's ``compose`` keeps a mark on every node; ``safe_load`` throws them
away. We compose, then build the data ourselves so that a pydantic error
location (``("rules", 3, "when", 0)``) can be turned into ``file:line:col``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from cds.yamlio import SafeLoader

Path_ = tuple[str | int, ...]


class YamlSyntaxError(ValueError):
    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


@dataclass
class PositionedYaml:
    data: Any
    # path -> (line, column) of the value; keys of mappings also at path + ("<key>",)
    positions: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicate_keys: list[tuple[Path_, int, int]] = field(default_factory=list)

    def where(self, path: Sequence[str | int], key: bool = False) -> tuple[int, int]:
        """Position of the deepest existing node on ``path`` (1-based line and column)."""
        items = tuple(path)
        if key and items + ("<key>",) in self.positions:
            return self.positions[items + ("<key>",)]
        while items:
            if items in self.positions:
                return self.positions[items]
            items = items[:-1]
        return self.positions.get((), (1, 1))


def load_positioned(text: str) -> PositionedYaml:
    result = PositionedYaml(data=None)
    try:
        loader = SafeLoader(text)
    except UnicodeError as exc:  # e.g. a lone surrogate: libyaml encodes the text first
        line, column = _line_column(text, getattr(exc, "start", 0))
        raise YamlSyntaxError(line, column, f"text cannot be encoded: {exc.reason}") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            result.data = _build(loader, node, (), result)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSyntaxError(line, column, f"{exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        # a character the YAML reader refuses (e.g. a C1 control from a bad paste): it carries an
        # offset into the text, not a mark
        line, column = _line_column(text, exc.position)
        raise YamlSyntaxError(
            line,
            column,
            f"unacceptable character U+{exc.character:04X}" if isinstance(exc.character, int) else str(exc.reason),
        ) from None
    except (yaml.YAMLError, RecursionError, ValueError, TypeError, UnicodeError) as exc:
        # anything else the parser or a constructor raises (e.g. an unhashable key): never a traceback
        raise YamlSyntaxError(1, 1, f"{type(exc).__name__}: {exc}") from None
    finally:
        loader.dispose()
    return result


def _line_column(text: str, offset: int) -> tuple[int, int]:
    before = text[: max(offset, 0)]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _build(loader: yaml.SafeLoader, node: yaml.Node, path: Path_, out: PositionedYaml) -> Any:
    out.positions[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        mapping: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                key = str(key)
            if key in mapping:
                out.duplicate_keys.append((path + (key,), *_mark(key_node)))
            out.positions[path + (key, "<key>")] = _mark(key_node)
            mapping[key] = _build(loader, value_node, path + (key,), out)
        return mapping
    if isinstance(node, yaml.SequenceNode):
        return [_build(loader, item, path + (index,), out) for index, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)
