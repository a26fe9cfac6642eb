"""ASGI entry point for uvicorn/gunicorn workers: ``uvicorn cds.asgi:app``.

Configuration comes from the environment (``CDS_*``), so every worker process
builds the same app. ``CDS_CONFIG_FILE`` is read here directly, not through ``Settings``,
because it names where the settings come from.
"""

import gc
import os
from pathlib import Path

# No cyclic-collector passes while the worker imports and builds the app; its start-up resumes them
# (cds.app.create_app's resume_collector, docs/adr/0014-cold-start.md).
gc.disable()

from cds.app import create_app  # noqa: E402
from cds.observability.logs import configure_logging  # noqa: E402
from cds.settings import load_settings  # noqa: E402

_config = os.environ.get("CDS_CONFIG_FILE")
settings = load_settings(Path(_config) if _config else None)
settings.check()
configure_logging(settings.log_level)
app = create_app(settings, resume_collector=True)
