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

import hashlib
import os
import pickle
import re
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
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
    disk = _DISK_CACHE
    data = disk.get("data", text) if disk is not None else _MISSING
    if data is _MISSING:
        data = yaml.load(text, Loader=SafeLoader)
        if disk is not None:
            disk.put("data", text, data)
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
    disk = _DISK_CACHE
    if disk is not None:
        cached = disk.get("positioned", text)
        if cached is not _MISSING:
            try:
                return _positioned_from_plain(cached)
            except (KeyError, TypeError, ValueError):
                pass  # not the shape this code writes: parse
    result = _parse_positioned(text)
    if disk is not None:
        disk.put("positioned", text, _positioned_to_plain(result))
    return result


def _parse_positioned(text: str) -> PositionedYaml:
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


# ------------------------------------------------------------ parse results kept on disk (ADR 0014)
#
# Parsing the YAML under rules/ (545 kB: libyaml's scanner, then PyYAML's pure-Python constructor and
# resolver, and the line/column marks) was ~0.3 s of CPU at every start. Inside ``cached_parses``, each
# parse result is looked up by the SHA-256 of its exact text in one file named by the digest of every
# file under rules/ and of what shapes a parse (this module's source, PyYAML's and libyaml's versions,
# Python's version). Only plain JSON is stored (no pickle: nothing read back can run code), and only a
# result that JSON gives back exactly (str-keyed mappings, lists, str, int, finite float, bool, null):
# a file with a date, a non-string key or a non-finite number is parsed every time. A text that does
# not parse is never stored, so a broken file is always parsed and reported with its line and column.

_MISSING: Any = object()
_CACHE_FORMAT = "cds-yaml-parse-cache/1"
_CACHE_FILES_KEPT = 8  # one file per version of rules/; older ones are removed when a new one is written
_DISK_CACHE: ParseCache | None = None


def _parser_identity() -> str:
    """What shapes a parse result besides the text: this module's code and the parser's versions (taken
    once per process: the code that runs is the code imported)."""
    if not _IDENTITY:
        _IDENTITY.append(_identity_now())
    return _IDENTITY[0]


_IDENTITY: list[str] = []


def _identity_now() -> str:
    libyaml = yaml.__with_libyaml__ and getattr(yaml, "_yaml", None)
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for part in (_CACHE_FORMAT, sys.version, yaml.__version__, str(SafeLoader.__name__)):
        digest.update(b"\0" + part.encode())
    if libyaml:
        digest.update(b"\0libyaml " + str(libyaml.get_version_string()).encode())
    return digest.hexdigest()


def tree_digest(rules_dir: Path) -> str:
    """SHA-256 of every file under ``rules_dir`` (relative path and bytes) and of the parser's identity."""
    digest = hashlib.sha256(_parser_identity().encode())
    root = Path(rules_dir)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(b"\0" + str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _text_key(kind: str, text: str | bytes) -> str:
    raw = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return hashlib.sha256(kind.encode() + b"\0" + raw).hexdigest()


def _refuse(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def _as_json(plain: Any) -> bytes | None:
    """``plain`` as JSON if JSON gives it back exactly, else None. orjson refuses what it cannot write
    (a set, bytes, a non-string key, an integer beyond 64 bits, a lone surrogate; dates are sent to
    ``_refuse``); what it would write differently (a tuple as a list, NaN or infinity as null) reads
    back unequal. orjson keeps int, float and bool apart, so equality is exactness here."""
    try:
        encoded = orjson.dumps(
            plain, default=_refuse, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
        )
    except (orjson.JSONEncodeError, TypeError):
        return None
    return encoded if orjson.loads(encoded) == plain else None


def _positioned_to_plain(doc: PositionedYaml) -> dict[str, Any]:
    return {
        "data": doc.data,
        "positions": [[list(path), line, column] for path, (line, column) in doc.positions.items()],
        "duplicate_keys": [[list(path), line, column] for path, line, column in doc.duplicate_keys],
    }


def _positioned_from_plain(plain: dict[str, Any]) -> PositionedYaml:
    return PositionedYaml(
        data=plain["data"],
        positions={tuple(path): (line, column) for path, line, column in plain["positions"]},
        duplicate_keys=[(tuple(path), line, column) for path, line, column in plain["duplicate_keys"]],
    )


class ParseCache:
    """The parse results of one exact ``rules/`` tree: one JSON-lines file, read once, written once.

    The file is a header line (format, parser identity) and one ``key<TAB>json`` line per text. An entry
    is decoded when it is asked for, so every reader gets objects of its own. The file is trusted only if
    this user owns it and no one else may write it; anything unexpected in it means "parse"."""

    def __init__(self, directory: Path, rules_dir: Path) -> None:
        self.directory = Path(directory)
        self.rules_dir = Path(rules_dir)
        self.identity = _parser_identity()
        self.tree = tree_digest(self.rules_dir)
        self.path = self.directory / f"{self.tree}.jsonl"
        self.hits = self.misses = 0
        self._stored = self._read()
        self._used: dict[str, bytes] = {}
        self._added = False
        self._lock = threading.Lock()

    def _read(self) -> dict[str, bytes]:
        try:
            with self.path.open("rb") as handle:
                status = os.fstat(handle.fileno())
                if status.st_mode & 0o022 or (hasattr(os, "getuid") and status.st_uid != os.getuid()):
                    return {}
                lines = handle.read().split(b"\n")
            header = orjson.loads(lines[0])
        except (OSError, orjson.JSONDecodeError, IndexError):
            return {}
        if header != {"format": _CACHE_FORMAT, "identity": self.identity, "tree": self.tree}:
            return {}
        entries = {}
        for line in lines[1:]:
            key, tab, encoded = line.partition(b"\t")
            if tab:
                entries[key.decode("ascii", "replace")] = encoded
        return entries

    def get(self, kind: str, text: str | bytes) -> Any:
        """The stored result for exactly this text, decoded afresh, or ``_MISSING``."""
        key = _text_key(kind, text)
        encoded = self._stored.get(key)
        if encoded is not None:
            try:
                value = orjson.loads(encoded)
            except orjson.JSONDecodeError:
                value = _MISSING
            else:
                with self._lock:
                    self.hits += 1
                    self._used[key] = encoded
                return value
        with self._lock:
            self.misses += 1
        return _MISSING

    def put(self, kind: str, text: str | bytes, plain: Any) -> None:
        """Keep a fresh parse result for ``save`` (only when JSON gives it back exactly)."""
        encoded = _as_json(plain)
        if encoded is None:
            return
        with self._lock:
            self._used[_text_key(kind, text)] = encoded
            self._added = True

    def save(self) -> bool:
        """Write the results used, if any was parsed afresh and ``rules/`` did not change meanwhile.
        An unwritable directory only means the next start parses again."""
        with self._lock:
            if not self._added or tree_digest(self.rules_dir) != self.tree:
                return False
            lines = [orjson.dumps({"format": _CACHE_FORMAT, "identity": self.identity, "tree": self.tree})]
            lines += [key.encode("ascii") + b"\t" + encoded for key, encoded in sorted(self._used.items())]
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".parsed-", suffix=".tmp")  # mode 0600
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(b"\n".join(lines) + b"\n")
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            older = sorted(self.directory.glob("*.jsonl"), key=lambda p: p.stat().st_mtime, reverse=True)
            for stale in older[_CACHE_FILES_KEPT:]:
                stale.unlink(missing_ok=True)
        except OSError:
            return False
        return True


@contextmanager
def cached_parses(rules_dir: Path, directory: Path | None) -> Iterator[ParseCache | None]:
    """Within the block, every parse in this process is looked up in (and added to) the cache of
    ``rules_dir``'s exact files in ``directory``; written when the block ends without an exception.
    ``directory`` None: no cache. Results are the same with or without it (tests/knowledge)."""
    global _DISK_CACHE
    if directory is None:
        yield None
        return
    cache = ParseCache(directory, rules_dir)
    previous, _DISK_CACHE = _DISK_CACHE, cache
    try:
        yield cache
    finally:
        _DISK_CACHE = previous
    cache.save()
