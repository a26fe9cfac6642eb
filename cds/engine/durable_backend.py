"""durable-rules behind a narrow adapter, hardened per knowledge/durable-rules.md.

What this module does, and why:

* Direct calls of the ``durable_rules_engine`` C extension. No ``durable.lang``
  (process-global host) and no ``engine.Host`` (its timer threads crash with
  concurrent sessions, B4).
* Only alpha tests and equality joins are compiled. No ``$not`` (order-dependent,
  B3), no non-equality joins or arithmetic (out-of-bounds reads, B2), no regex
  (leaks on every ruleset rebuild, §4.5): value-set prefixes and absences are
  computed in Python beforehand (``cds.engine.prepare``).
* One live session per process under a lock, with a fresh session id per
  evaluation and ``delete_state`` in ``finally``; with one live session the
  32-bit session hash (B6) and the 1024-session cap cannot bite, and the GIL
  serialises the C calls anyway.
* A sentinel fact and rule so at least one action fires in every session
  (``delete_state`` segfaults otherwise, B1).
* Facts carry short engine ids ``f<n>`` (no two collide under the 32-bit fact
  hash; checked in tests), are flat and far below 252 properties (B5), and
  have unique ids (a duplicate is reported as code 2 and raises here).
* Numbers are written in fixed-point notation by ``dumps``: the engine's JSON
  number parser crashes on exponent notation such as ``1e-05`` (measured here,
  not in the knowledge file); ``prepare`` bounds range and precision.
* A batch where some fact matches no rule returns code 1; the C core has still
  asserted the others and their actions are taken synchronously below (the
  stock ``Host`` would have deferred them to a background thread).
* Derived facts are asserted into the same session after the actions that
  produce them, until no new ones appear; only those some pattern can match
  (``derived_facts_read``), which saves a round when the last ones are read
  only in Python (population selectors).
* Retired rulesets (after a hot reload) are deleted only once no evaluation can
  still hold them: their handles are queued by a finaliser and freed under the
  lock at the next evaluation or reload.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import orjson

from cds.engine import ir
from cds.engine.prepare import PreparedFact, alpha_predicate, derived_fact

try:  # the C extension; absent on Python 3.13 or where it did not build
    import durable_rules_engine as _dr
except ImportError:  # pragma: no cover - depends on the platform
    _dr = None

AVAILABLE = _dr is not None
SENTINEL_RULE = "sentinel"
SENTINEL_ID = "z"

# One lock for every durable call in the process: one live session at a time.
_LOCK = threading.RLock()
_SESSIONS = itertools.count(1)
_RULESET_NAMES = itertools.count(1)
_RETIRED_HANDLES: list[int] = []
# rulesets created and freed in this process (hot reload must not accumulate them)
RULESET_COUNTS = {"created": 0, "deleted": 0}

Matches = dict[int, set[tuple[str, ...]]]
# A number in exponent notation in orjson's output (or a string that looks like one: then the
# fixed-point writer runs needlessly, which is only slower).
_EXPONENT = re.compile(rb"[0-9][eE][-+]?[0-9]")


class DurableError(RuntimeError):
    """The engine refused a fact batch or a ruleset; the message carries its code."""


def _queue_delete(handle: int) -> None:
    _RETIRED_HANDLES.append(handle)  # list.append is atomic under the GIL; freed under the lock later


def _free_retired() -> None:
    while _RETIRED_HANDLES:
        handle = _RETIRED_HANDLES.pop()
        try:
            _dr.delete_ruleset(handle)
            RULESET_COUNTS["deleted"] += 1
        except Exception:
            pass


def dumps(value: Any) -> str:
    """JSON without exponent notation (see the module docstring); only what facts and rules contain."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise DurableError(f"non-finite number {value!r} cannot be sent to durable-rules")
        text = format(value, ".6f").rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise DurableError(f"cannot send {type(value).__name__} to durable-rules")


def compile_to_durable(compiled: ir.CompiledRules) -> dict[str, Any]:
    """The durable-rules JSON ruleset: rule ``r<index>``, patterns ``p<i>``, plus the sentinel."""
    definition: dict[str, Any] = {}
    for rule in compiled.rules:
        patterns = []
        for index, pattern in enumerate(rule.patterns):
            conditions: list[dict[str, Any]] = [{"kind": pattern.kind}]
            conditions.extend(_condition(t) for t in pattern.tests)
            patterns.append({f"p{index}": {"$and": conditions}})
        definition[f"r{rule.index}"] = {"all": patterns}
    definition[SENTINEL_RULE] = {"all": [{"m": {"kind": ir.SENTINEL_KIND}}]}
    return definition


def attributes_read(compiled: ir.CompiledRules) -> dict[str, frozenset[str]]:
    """Fact kind -> the attributes any rule's test or join reads on facts of that kind."""
    tested: dict[str, set[str]] = {}
    for rule in compiled.rules:
        for pattern in rule.patterns:
            names = tested.setdefault(pattern.kind, set())
            for test in pattern.tests:
                names.add(test.attr)
                if test.op == "join":
                    tested.setdefault(rule.patterns[test.join_pattern].kind, set()).add(test.join_attr)
    return {kind: frozenset(names) for kind, names in tested.items()}


def derived_facts_read(compiled: ir.CompiledRules) -> frozenset[int]:
    """The rules whose derived fact some pattern can match (its kind and every non-join test pass on the fact's
    constant attributes). The others (e.g. population selectors, read in Python after matching) are not asserted:
    a fact no pattern's own tests accept can match no rule, so the matches are the same."""
    patterns = [alpha_predicate(p.tests) for r in compiled.rules for p in r.patterns if p.kind == "derived"]
    return frozenset(
        rule.index
        for rule in compiled.rules
        if rule.derive is not None and any(accepts(derived_fact(rule).attrs) for accepts in patterns)
    )


def _condition(test: ir.Test) -> dict[str, Any]:
    op, attr = test.op, test.attr
    if op == "eq":
        return {attr: test.value}
    if op == "member":
        return {attr: True}
    if op == "any_of":
        if len(test.values) == 1:
            return {attr: test.values[0]}
        return {"$or": [{attr: v} for v in test.values]}
    if op == "join":
        return {attr: {f"p{test.join_pattern}": test.join_attr}}
    durable_op = {"ne": "$neq", "lt": "$lt", "le": "$lte", "gt": "$gt", "ge": "$gte"}[op]
    return {durable_op: {attr: test.value}}


class DurableExecutor:
    name = "durable"

    def __init__(self, compiled: ir.CompiledRules) -> None:
        if _dr is None:
            raise DurableError("durable_rules_engine cannot be imported")
        self.compiled = compiled
        self._rules = {f"r{r.index}": r for r in compiled.rules}
        self._tested = attributes_read(compiled)
        self._derived_read = derived_facts_read(compiled)
        definition = dumps(compile_to_durable(compiled))
        with _LOCK:
            _free_retired()
            try:
                self._handle = _dr.create_ruleset(f"cds{next(_RULESET_NAMES)}", definition)
                RULESET_COUNTS["created"] += 1
            except Exception as exc:
                raise DurableError(f"durable-rules refused the compiled rule set: {exc}") from exc
        self._finalizer = weakref.finalize(self, _queue_delete, self._handle)

    def close(self) -> None:
        """Retire the ruleset; it is freed once no evaluation holds it."""
        self._finalizer()

    def match(self, facts: Sequence[PreparedFact]) -> Matches:
        by_engine_id = {f.engine_id: f for f in facts}
        matches: Matches = {}
        derived_done: set[int] = set()
        with _LOCK:
            _free_retired()
            sid = f"s{next(_SESSIONS)}"
            batch = [self._wire(f, sid) for f in facts]
            batch.append({"sid": sid, "id": SENTINEL_ID, "kind": ir.SENTINEL_KIND})
            try:
                while batch:
                    state = self._assert(batch)
                    self._drain(state, matches)
                    batch = []
                    for index in sorted(matches):
                        rule = self.compiled.rules[index]
                        if rule.derive is not None and index not in derived_done:
                            derived_done.add(index)
                            if index not in self._derived_read:
                                continue  # no pattern can match it: asserting it costs a round for nothing
                            fact = derived_fact(rule)
                            by_engine_id[fact.engine_id] = fact
                            batch.append(self._wire(fact, sid))
            finally:
                with contextlib.suppress(Exception):
                    _dr.delete_state(self._handle, sid)
        return matches

    def _wire(self, fact: PreparedFact, sid: str) -> dict[str, Any]:
        # Only the attributes some rule tests or joins on: the engine parses and indexes every
        # property it is sent, and matching reads nothing else (about half the batch's JSON).
        tested = self._tested.get(fact.kind, frozenset())
        wired: dict[str, Any] = {name: value for name, value in fact.attrs.items() if name in tested}
        wired.update(kind=fact.kind, id=fact.engine_id, sid=sid)
        return wired

    def _assert(self, batch: list[dict[str, Any]]) -> int:
        # orjson writes the batch in one C call; it writes some floats in exponent notation (e.g.
        # 5e-324; prepare keeps numbers below 1e12 and rounds them to 6 decimals, so in practice
        # none), and only then is the slower fixed-point writer needed.
        try:
            encoded: bytes | None = orjson.dumps(batch)
        except TypeError:  # a value orjson does not write (e.g. a lone surrogate): the plain writer
            encoded = None
        text = dumps(batch) if encoded is None or _EXPONENT.search(encoded) else encoded.decode("utf-8")
        code, state = _dr.assert_facts(self._handle, text)
        if code == 2:
            raise DurableError("durable-rules reported a fact as already observed (code 2)")
        if code not in (0, 1):  # 1: some fact matched no rule; the others are asserted
            raise DurableError(f"durable-rules refused the facts (code {code})")
        return int(state)

    def _drain(self, state: int, matches: Matches) -> None:
        result = _dr.start_action_for_state(self._handle, state)
        message = result[1] if result else None
        try:
            while message:
                for rule_name, bound in orjson.loads(message).items():
                    rule = self._rules.get(rule_name)
                    if rule is not None:
                        ids = tuple(bound[f"p{i}"]["id"] for i in range(len(rule.patterns)))
                        matches.setdefault(rule.index, set()).add(ids)
                message = _dr.complete_and_start_action(self._handle, state)
        except BaseException:
            with contextlib.suppress(Exception):
                _dr.abandon_action(self._handle, state)
            raise
