"""ASGI entry point for uvicorn/gunicorn workers: ``uvicorn cds.asgi:app``.

Configuration comes from the environment (``CDS_*``), so every worker process
builds the same app. ``CDS_CONFIG_FILE`` is read here directly, not through ``Settings``,
because it names where the settings come from.
"""

import os
from pathlib import Path

from cds.app import create_app
from cds.observability.logs import configure_logging
from cds.settings import load_settings

_config = os.environ.get("CDS_CONFIG_FILE")
settings = load_settings(Path(_config) if _config else None)
settings.check()
configure_logging(settings.log_level)
app = create_app(settings)
