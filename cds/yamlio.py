"""YAML reading for everything under rules/ and the config file.

PyYAML's C parser (libyaml, shipped in PyYAML's wheels) is several times faster than its
pure-Python one; rule files are read at every start and reload, so start-up time depends on
it. Both give the same data and the same line/column marks; the pure-Python loader is the
fallback where PyYAML was built without libyaml.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]

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
