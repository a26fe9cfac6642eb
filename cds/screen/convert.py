"""Patient Bundles (Synthea's output) -> a Bulk Data export (NDJSON per resource type + manifest).

For tests and demos on data nobody on the team wrote: ``cds ndjson-from-bundles
../shared/data/synthea OUT``. References by ``fullUrl`` (``urn:uuid:...``) become
``Type/id`` as a server's export would write them; resources are split over
``files_per_type`` files per type (as servers split large exports), optionally gzip-compressed.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import BinaryIO

import orjson

from cds.screen.export import bundle_resources, write_manifest


def convert_bundles(source: Path, out_dir: Path, *, compress: bool = False, files_per_type: int = 1) -> dict[str, int]:
    """Write the export; returns resources written per type. Bundles that are not patient
    Bundles (no Patient entry) are left out; one file is open per type and part at a time."""
    out_dir.mkdir(parents=True, exist_ok=True)
    bundles = sorted(p for p in Path(source).glob("*.json") if p.is_file())
    handles: dict[tuple[str, int], gzip.GzipFile | BinaryIO] = {}
    written: dict[str, int] = {}
    patient_number = 0
    try:
        for path in bundles:
            try:
                resources = bundle_resources(str(path))
            except ValueError:
                continue
            if not any(r.get("resourceType") == "Patient" for r in resources):
                continue
            part = patient_number % max(1, files_per_type)
            patient_number += 1
            for resource in resources:
                rtype = str(resource.get("resourceType"))
                key = (rtype, part)
                if key not in handles:
                    name = f"{rtype}.{part + 1:03d}.ndjson" + (".gz" if compress else "")
                    handles[key] = gzip.open(out_dir / name, "wb") if compress else open(out_dir / name, "wb")  # noqa: SIM115
                handles[key].write(orjson.dumps(resource) + b"\n")
                written[rtype] = written.get(rtype, 0) + 1
    finally:
        for handle in handles.values():
            handle.close()
    outputs = sorted(
        (Path(h.name if isinstance(h.name, str) else h.name.decode()).name, t) for (t, _), h in handles.items()
    )
    write_manifest(out_dir, outputs)
    return written
