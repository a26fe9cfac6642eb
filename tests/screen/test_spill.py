"""The spill files of the screen's shuffle: a bucket's section holds exactly the records written to
it, in order; the bucket of a key is the same in every process (``hash()`` is not); a rewrite (a
task Dask runs again) replaces the file whole."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from cds.screen.spill import bucket_of, encode, read_section, write_sections


def test_each_section_reads_back_its_own_records_in_order(tmp_path):
    path = tmp_path / "patients" / "000003.spill"
    records = {
        0: [("p1", (3, 1), b'{"resourceType":"Patient","id":"p1"}'), ("p1", (3, 7), b'{"a":"tab\\there"}')],
        2: [("odd\tid\n", (3, 2), b"{}\r\n")],
    }
    sections = [[encode(*record) for record in records.get(b, [])] for b in range(4)]
    write_sections(path, sections)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # patient data
    assert list(read_section(path, 0, 4)) == records[0]
    assert list(read_section(path, 2, 4)) == [("odd\tid\n", (3, 2), b"{}")]  # the line end is the record's
    assert list(read_section(path, 1, 4)) == [] and list(read_section(path, 3, 4)) == []
    assert list(read_section(tmp_path / "absent.spill", 0, 4)) == []  # a task with no records writes none


def test_a_rewrite_replaces_the_file_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "000001.spill"
    write_sections(path, [[encode("a", (1, 1), b"{}")], []])
    write_sections(path, [[], [encode("b", (1, 2), b"{}")]])
    assert list(read_section(path, 0, 2)) == [] and [r[0] for r in read_section(path, 1, 2)] == ["b"]
    assert os.listdir(tmp_path) == ["000001.spill"]


def test_the_bucket_of_a_key_is_the_same_in_another_process():
    keys = ["synth-000001", "0a5c7e1e-0bd4-4d3a-8e2b-1c6c1d1c0e55", "ü-patient"]
    here = [bucket_of(k, 97) for k in keys]
    code = f"from cds.screen.spill import bucket_of; print([bucket_of(k, 97) for k in {keys!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert there.stdout.strip() == str(here)
    assert len(set(bucket_of(f"p{i}", 16) for i in range(1000))) == 16  # spread over every bucket
