"""Helpers for property tests that break FHIR JSON one element at a time."""

from __future__ import annotations

import copy
from typing import Any


def element_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and list indexes) to an element below ``node``."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out += element_paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += element_paths(value, (*prefix, index))
    return out


def replaced(node: Any, path: tuple, value: Any) -> Any:
    """A deep copy of ``node`` with the element at ``path`` set to ``value``."""
    node = copy.deepcopy(node)
    target = node
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return node
