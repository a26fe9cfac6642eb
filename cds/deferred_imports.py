"""Library modules imported by the service's libraries but never used by it, stood in for until used.

Importing it is enough; ``cds.app`` imports it before anything imports httpx (docs/adr/0014-cold-start.md).

* ``httpx`` runs ``from ._main import main`` at its top: its command-line client, which imports rich,
  pygments and click (~0.07-0.1 s of CPU of a cold start) whenever they are installed (spaCy's
  command line brings them). The service uses httpx's client only. ``httpx.main`` stays callable and
  runs the real command line; any other read of ``httpx._main`` imports the real module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from typing import Any

_HTTPX_CLI = "httpx._main"


class _StandIn(types.ModuleType):
    """Stands in for a module: the real one is imported on the first attribute read it does not
    answer itself, and then answers every read (also through this object, which importers kept)."""

    def __getattr__(self, name: str) -> Any:
        if name == "__path__":  # not a package; answering would import the real module
            raise AttributeError(name)
        return getattr(_real(self.__name__), name)


def _real(name: str) -> types.ModuleType:
    if isinstance(sys.modules.get(name), _StandIn):
        del sys.modules[name]
    return importlib.import_module(name)


def _httpx_main(*args: Any, **kwargs: Any) -> Any:
    """``httpx.main``: the real command line, imported now."""
    return _real(_HTTPX_CLI).main(*args, **kwargs)


def _stand_in_for_httpx_command_line() -> None:
    if "httpx" in sys.modules or _HTTPX_CLI in sys.modules or importlib.util.find_spec("httpx") is None:
        return
    stand_in = _StandIn(_HTTPX_CLI)
    stand_in.main = _httpx_main  # type: ignore[attr-defined]
    sys.modules[_HTTPX_CLI] = stand_in


_stand_in_for_httpx_command_line()
