"""Hash-partitioned spill files: the shuffle of ``cds screen`` (docs/adr/0010).

A task that reads part of the export writes one spill file holding ``buckets`` sections: section
``b`` holds the records whose key hashes to ``b``. The task for bucket ``b`` then reads section
``b`` of every spill file of the stage, and nothing else. So a task never holds more than its own
input (one chunk) or its own bucket, whatever the population size, and the records in flight live
on disk, not in worker memory.

File layout: ``(buckets + 1)`` little-endian uint64 offsets (relative to the end of that header),
then the sections back to back. A record is ``JSON header`` TAB ``raw resource`` LF; the header is
``[key, position]`` (orjson escapes tabs and newlines in strings, and a resource's raw NDJSON
line holds no newline). Files are written to a temporary name and renamed: a task that Dask runs
again after a lost worker rewrites the same bytes, and a reader never sees half a file.
"""

from __future__ import annotations

import os
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


def bucket_of(key: str, buckets: int) -> int:
    """Stable across processes and machines (``hash()`` is salted per process)."""
    return zlib.crc32(key.encode("utf-8", "surrogatepass")) % buckets


def encode(key: str, position: Any, raw: bytes) -> bytes:
    return orjson.dumps([key, position]) + b"\t" + raw.rstrip(b"\r\n") + b"\n"


def write_sections(path: Path, sections: list[list[bytes]]) -> int:
    """Write ``sections`` (one list of encoded records per bucket) to ``path``; returns bytes written."""
    sizes = [sum(len(record) for record in section) for section in sections]
    offsets = [0]
    for size in sizes:
        offsets.append(offsets[-1] + size)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(struct.pack(f"<{len(offsets)}Q", *offsets))
        for section in sections:
            handle.writelines(section)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return offsets[-1]


def read_section(path: Path, bucket: int, buckets: int) -> Iterator[tuple[str, tuple[Any, ...], bytes]]:
    """(key, position, raw) of the records of section ``bucket``; nothing when the file is absent
    (a task that had no records for this stage writes no file)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below; absent files are normal
    except FileNotFoundError:
        return
    with handle:
        header = 8 * (buckets + 1)
        handle.seek(8 * bucket)
        start, end = struct.unpack("<2Q", handle.read(16))
        if end <= start:
            return
        handle.seek(header + start)
        data = handle.read(end - start)
    for line in data.splitlines():
        head, _, raw = line.partition(b"\t")
        key, position = orjson.loads(head)
        yield key, _tuple(position), raw


def _tuple(value: Any) -> tuple[Any, ...]:
    return tuple(_tuple(v) if isinstance(v, list) else v for v in value) if isinstance(value, list) else (value,)
