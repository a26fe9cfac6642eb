"""A FHIR Bulk Data export on disk: which files, what they hold, and how to read them in chunks.

Two shapes are read:

* a Bulk Data export (Bulk Data Access IG, ``$export``): NDJSON files, one resource per line,
  one or more files per resource type, optionally gzip-compressed; given as the folder that
  holds them or as the export's manifest (the JSON the status endpoint answers with, whose
  ``output`` lists ``{type, url}``; ``url`` is read as a path relative to the manifest when
  it is not an absolute path or a ``file:`` URL);
* a folder of FHIR Bundles, one per patient (Synthea's shape).

``scan_export`` streams every file once in the client process (constant memory): it
computes the input digest, counts lines and records where each chunk of ``CHUNK_LINES``
lines starts, so that workers can read chunks independently. Nothing is loaded whole.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlparse

import orjson

CHUNK_LINES = 20_000  # lines per read task: a few MB to a few tens of MB of NDJSON
_TYPE_FROM_NAME = re.compile(r"^(?:\d+[._-])?([A-Z][A-Za-z]+)")


class ExportError(ValueError):
    """The export cannot be read at all (no such folder, an unreadable manifest, no files)."""


@dataclass(frozen=True)
class Chunk:
    """One read task: ``count`` lines of ``path`` from line ``first_line`` (1-based) at ``offset``."""

    index: int
    path: str
    kind: str  # "ndjson" or "bundle"
    compressed: bool
    first_line: int
    offset: int
    count: int


@dataclass(frozen=True)
class ExportFile:
    path: str
    kind: str  # "ndjson" or "bundle"
    resource_type: str | None  # from the manifest or the file name; None for bundles
    compressed: bool
    sha256: str
    size: int
    lines: int
    raw_size: int = 0  # bytes once decompressed (= size for uncompressed files)


@dataclass(frozen=True)
class ExportScan:
    source: str
    files: tuple[ExportFile, ...]
    chunks: tuple[Chunk, ...]
    digest: str  # sha256 over the files' names (relative) and contents, in a stable order
    expected_patients: int  # Patient lines, or bundle files: the denominator of the progress bar

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def total_raw_bytes(self) -> int:
        """The export's size decompressed: what the shuffle moves."""
        return sum(f.raw_size or f.size for f in self.files)


def _open(path: str, compressed: bool) -> gzip.GzipFile | BinaryIO:
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def _is_gzip(path: Path) -> bool:
    if path.suffix == ".gz":
        return True
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def _type_from_name(name: str) -> str | None:
    match = _TYPE_FROM_NAME.match(name)
    return match.group(1) if match else None


def _manifest_files(manifest: Path) -> list[tuple[Path, str | None]]:
    try:
        document = orjson.loads(manifest.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ExportError(f"{manifest}: not a readable Bulk Data manifest ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("output"), list):
        raise ExportError(f"{manifest}: a Bulk Data manifest has an 'output' list")
    files = []
    for number, item in enumerate(document["output"]):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise ExportError(f"{manifest}: output[{number}] has no 'url'")
        url = urlparse(item["url"])
        if url.scheme in ("http", "https"):
            raise ExportError(
                f"{manifest}: output[{number}] is a URL ({url.scheme}); download the export first "
                "(this command reads files only)"
            )
        raw = unquote(url.path) if url.scheme == "file" else item["url"]
        path = Path(raw) if Path(raw).is_absolute() else manifest.parent / raw
        files.append((path, item.get("type") if isinstance(item.get("type"), str) else None))
    return files


def discover(source: Path) -> list[tuple[Path, str, str | None]]:
    """(path, kind, resource type) of every file of the export, in a stable order."""
    source = Path(source)
    if source.is_file():
        if source.suffix == ".json":
            return [(p, "ndjson", t) for p, t in _manifest_files(source)]
        return [(source, "ndjson", _type_from_name(source.name))]
    if not source.is_dir():
        raise ExportError(f"{source}: no such file or folder")
    manifest = source / "manifest.json"
    if manifest.is_file():
        return [(p, "ndjson", t) for p, t in _manifest_files(manifest)]
    found: list[tuple[Path, str, str | None]] = []
    for path in sorted(source.iterdir()):
        name = path.name
        if not path.is_file() or name.startswith("."):
            continue
        if name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")):
            found.append((path, "ndjson", _type_from_name(name)))
        elif name.endswith(".json"):
            found.append((path, "bundle", None))
    if not found:
        raise ExportError(f"{source}: no NDJSON files (*.ndjson, *.ndjson.gz) and no Bundle files (*.json)")
    return found


def scan_export(source: Path, chunk_lines: int = CHUNK_LINES) -> ExportScan:
    """Stream every file once: digest, line counts and chunk offsets. Constant memory."""
    root = Path(source)
    entries = discover(root)
    files: list[ExportFile] = []
    chunks: list[Chunk] = []
    overall = hashlib.sha256()
    expected_patients = 0
    for path, kind, resource_type in entries:
        if not path.is_file():
            raise ExportError(f"{path}: listed in the export but not found")
        compressed = _is_gzip(path)
        digest = hashlib.sha256()
        size = path.stat().st_size
        with open(path, "rb") as raw:
            for block in iter(lambda: raw.read(1 << 20), b""):
                digest.update(block)
        raw_size = size
        if kind == "bundle":
            lines = 1
            chunks.append(Chunk(len(chunks), str(path), kind, compressed, 1, 0, 1))
            expected_patients += 1
        else:
            lines = 0
            offset = 0
            chunk_start = (1, 0)
            with _open(str(path), compressed) as handle:
                for line in handle:
                    lines += 1
                    offset += len(line)
                    if lines % chunk_lines == 0:
                        chunks.append(
                            Chunk(
                                len(chunks),
                                str(path),
                                kind,
                                compressed,
                                chunk_start[0],
                                chunk_start[1],
                                lines - chunk_start[0] + 1,
                            )
                        )
                        chunk_start = (lines + 1, offset)
            if lines >= chunk_start[0]:
                chunks.append(
                    Chunk(
                        len(chunks),
                        str(path),
                        kind,
                        compressed,
                        chunk_start[0],
                        chunk_start[1],
                        lines - chunk_start[0] + 1,
                    )
                )
            raw_size = offset
            if resource_type == "Patient":
                expected_patients += lines
        name = path.name if path.parent == root or root.is_file() else str(path)
        overall.update(name.encode() + b"\0" + digest.hexdigest().encode() + b"\n")
        files.append(ExportFile(str(path), kind, resource_type, compressed, digest.hexdigest(), size, lines, raw_size))
    return ExportScan(str(root), tuple(files), tuple(chunks), "sha256:" + overall.hexdigest(), expected_patients)


# --------------------------------------------------------------------------- reading one chunk


def patient_of(resource: dict[str, Any]) -> str | None:
    """The id of the patient a resource belongs to (its compartment), or None.

    A Patient is its own; other resources name theirs in ``subject``, ``patient`` or
    ``beneficiary`` as ``Patient/<id>`` (relative or absolute URL).
    """
    if resource.get("resourceType") == "Patient":
        value = resource.get("id")
        return value if isinstance(value, str) and value else None
    for field_name in ("subject", "patient", "beneficiary"):
        reference = resource.get(field_name)
        if isinstance(reference, dict):
            text = reference.get("reference")
            if isinstance(text, str) and "Patient/" in text:
                patient = text.rsplit("Patient/", 1)[1].split("/_history", 1)[0]
                return patient or None
    return None


# Resources that name their drug by a reference to a Medication resource. In a Bulk Data export the
# Medication is in Medication.ndjson and names no patient: the screen joins it to the patients whose
# resources reference it (cds.screen.run.join_medications).
MEDICATION_USERS = frozenset(
    {"MedicationRequest", "MedicationStatement", "MedicationAdministration", "MedicationDispense"}
)


def medication_id(resource: dict[str, Any]) -> str | None:
    """The id of the Medication a resource's ``medicationReference`` points to outside the resource
    (``Medication/<id>``, versioned or absolute); None for ``#contained``, absent or other targets."""
    if resource.get("resourceType") not in MEDICATION_USERS:
        return None
    reference = resource.get("medicationReference")
    text = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(text, str) or text.startswith("#"):
        return None
    parts = text.split("/_history/", 1)[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Medication" and parts[-1]:
        return parts[-1]
    return None


def iter_chunk(chunk: Chunk) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) for the lines of ``chunk``."""
    with _open(chunk.path, chunk.compressed) as handle:
        if chunk.offset:
            handle.seek(chunk.offset)  # gzip: decompresses up to the offset (documented cost)
        for number in range(chunk.first_line, chunk.first_line + chunk.count):
            line = handle.readline()
            if not line:
                break
            yield number, line


def bundle_resources(path: str) -> list[dict[str, Any]]:
    """The resources of a Bundle file, with ``urn:uuid:`` references rewritten to ``Type/id``.

    Synthea's transaction Bundles refer to the patient by ``fullUrl`` (``urn:uuid:...``);
    a Bulk Data export would say ``Patient/<id>``. Raises ValueError when the file is not a Bundle.
    """
    with open(path, "rb") as handle:
        document = orjson.loads(handle.read())
    if not isinstance(document, dict) or document.get("resourceType") != "Bundle":
        raise ValueError("not a FHIR Bundle")
    entries = [e for e in document.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    aliases: dict[str, str] = {}
    for entry in entries:
        resource = entry["resource"]
        full_url, rid, rtype = entry.get("fullUrl"), resource.get("id"), resource.get("resourceType")
        if isinstance(full_url, str) and isinstance(rid, str) and isinstance(rtype, str):
            aliases[full_url] = f"{rtype}/{rid}"
    resources = [entry["resource"] for entry in entries]
    if aliases:
        resources = [_rewrite_references(r, aliases) for r in resources]
    return resources


def _rewrite_references(value: Any, aliases: dict[str, str]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str) and item in aliases:
                out[key] = aliases[item]
            else:
                out[key] = _rewrite_references(item, aliases)
        return out
    if isinstance(value, list):
        return [_rewrite_references(item, aliases) for item in value]
    return value


def write_ndjson(
    resources_by_type: dict[str, list[dict[str, Any]]], out_dir: Path, compress: bool = False
) -> list[Path]:
    """Write ``<Type>.ndjson[.gz]`` files and a Bulk Data manifest; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for resource_type in sorted(resources_by_type):
        name = f"{resource_type}.ndjson" + (".gz" if compress else "")
        path = out_dir / name
        payload = b"".join(orjson.dumps(r) + b"\n" for r in resources_by_type[resource_type])
        if compress:
            with gzip.open(path, "wb") as handle:
                handle.write(payload)
        else:
            path.write_bytes(payload)
        written.append(path)
    write_manifest(out_dir, [(p.name, p.name.split(".", 1)[0]) for p in written])
    return written


def write_manifest(out_dir: Path, outputs: list[tuple[str, str]]) -> Path:
    """A Bulk Data status-response manifest whose ``url``s are paths relative to it."""
    manifest = {
        "transactionTime": "1970-01-01T00:00:00Z",
        "request": "file:$export",
        "requiresAccessToken": False,
        "output": [{"type": t, "url": name} for name, t in outputs],
        "error": [],
    }
    path = out_dir / "manifest.json"
    path.write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return path
