"""YAML reading for everything under rules/ and the config file: the one YAML reader.

PyYAML's C parser (libyaml, shipped in PyYAML's wheels) is several times faster than its
pure-Python one; rule files are read at every start and reload, so start-up time depends on
it. Both give the same data and the same line/column marks; the pure-Python loader is the
fallback where PyYAML was built without libyaml.

``load_yaml`` gives plain data. ``load_positioned`` gives plain data plus the line/column of
every node: PyYAML's ``compose`` keeps a mark on every node and ``safe_load`` throws them away,
so we compose and build the data ourselves, and a location (``("rules", 3, "when", 0)``, from
pydantic or a checker) becomes ``file:line:col``. ``locate`` finds the place an error message
about a knowledge file names (an entry id, ``name[3]``, ``a.b``), for the checkers that report
in words rather than key paths.
"""

from __future__ import annotations

import pickle
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

Path_ = tuple[str | int, ...]

# The same file is read by several layers at one start (a value-set file by the rule loader twice,
# the terminology and the findings knowledge: four parses). Each text is parsed once; later reads
# get a fresh copy of the result (unpickling is ~20 times faster than parsing), so no reader can
# change what another sees. Bounded; only this process's own parse results are ever unpickled.
_PARSED: OrderedDict[str | bytes, bytes] = OrderedDict()
_PARSED_MAX = 256
_PARSED_LOCK = threading.Lock()


def load_yaml(text: str | bytes) -> Any:
    """``yaml.safe_load`` with the fastest safe loader available (each distinct text parsed once)."""
    with _PARSED_LOCK:
        blob = _PARSED.get(text)
        if blob is not None:
            _PARSED.move_to_end(text)
    if blob is not None:
        return pickle.loads(blob)
    data = yaml.load(text, Loader=SafeLoader)
    try:
        blob = pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, ValueError, RecursionError):
        return data  # not cached (cannot happen with the safe loader's types; kept safe anyway)
    with _PARSED_LOCK:
        _PARSED[text] = blob
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return data


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
        raise YamlSyntaxError(line, column, f"text cannot be encoded: {getattr(exc, 'reason', exc)}") from None
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


_INDEXED = re.compile(r"([A-Za-z_][\w-]*)\[(\d+)\]")
_DOTTED = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)+")
_TOKEN = re.compile(r"[\w][\w.\-]*")
_ID_KEYS = ("id", "concept", "valueset")


def locate(doc: PositionedYaml, message: str) -> tuple[int, int]:
    """The line and column an error message about ``doc`` points at (1, 1 when it names nothing found).

    In order: the entry the message names by id (``site calf: ...``, ``value set 'a': ...``) and
    within it an indexed path (``codes[2]``); then, inside that, the value or key the message
    quotes (``unknown parent 'feet'``), a key of the entry the message mentions, or a top-level
    dotted (``max_scope.NORMAL``) or back-quoted (`` `sites` ``) path.
    """
    base = _entry_named(doc, message) or ()
    path = base
    for name, index in _INDEXED.findall(message):
        if (*path, name, int(index)) in doc.positions:
            path = (*path, name, int(index))
    quoted = _quoted_in(doc, path, message)
    if quoted is not None:
        return quoted
    if base and path == base:
        entry = _at(doc.data, base)
        for word in _TOKEN.findall(message):
            if isinstance(entry, dict) and word in entry and word not in _ID_KEYS:
                return doc.where((*base, word))
    if not path:
        for dotted in _DOTTED.findall(message):
            candidate = tuple(dotted.split("."))
            if candidate[:1] in doc.positions:
                return doc.where(candidate)
        for word in re.findall(r"`([\w-]+)`", message):
            if (word,) in doc.positions:
                return doc.where((word,), key=True)
    return doc.where(path) if path else (1, 1)


def _quoted_in(doc: PositionedYaml, under: Path_, message: str) -> tuple[int, int] | None:
    """Position of the first value or key under ``under`` equal to a value the message quotes."""
    head = message.split(": ", 1)[0]
    quoted = [q for q in re.findall(r"'([^']+)'", message) if f"'{q}'" not in head]
    for value in quoted:
        for path, position in doc.positions.items():
            if path[: len(under)] != under or len(path) <= len(under):
                continue
            if path[-1] == "<key>":
                if path[-2] == value:
                    return position
            elif path[-1] not in _ID_KEYS and str(_at(doc.data, path)) == value:
                return position
    return None


def _entry_named(doc: PositionedYaml, message: str) -> Path_ | None:
    """Path of the first mapping whose id (or concept) is a word of the message before its first colon."""
    head = message.split(": ", 1)[0]
    wanted = [w.strip("'\"") for w in _TOKEN.findall(head)]
    found: dict[str, Path_] = {}
    for path in doc.positions:
        if len(path) < 2 or path[-1] not in _ID_KEYS:
            continue
        value = _at(doc.data, path)
        if isinstance(value, str | int) and str(value) in wanted:
            found.setdefault(str(value), path[:-1])
    for word in wanted:
        if word in found:
            return found[word]
    return None


def _at(data: Any, path: Path_) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
