"""The hook's HTTP latency with the snooze lookup, as a ratio to the same service without it (issue 15).

Three servers (``cds serve``, one worker each, 127.0.0.1 only) answer the source case:

* ``off``: ``CDS_SNOOZE_ENABLED=false``, no lookup (the baseline);
* ``on, not snoozed``: the lookup runs and finds nothing for this patient (every card is sent);
* ``on, snoozed``: the lookup finds the patient's snooze and hides the card.

Each starts from a copy of one SQLite store seeded with ``--snoozes`` snoozes of other patients, so that
the lookup meets a realistic table through its index. Requests are sequential (one client), and the
three servers are driven in turns, one request each, so that the machine's noise falls on all of them
alike. Reported: medians and p90 per server and the ratio of medians to ``off``. Target: the lookup adds
at most 10% to the median (``--max-ratio``); the exit status says whether it was met.

    .venv/bin/python -m benchmarks.bench_snooze                  # about a minute on 2 cores
    .venv/bin/python -m benchmarks.bench_snooze --rounds 3 --requests 20 --snoozes 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson

from benchmarks.cases import REPO
from benchmarks.http import HOOK_PATH, start_cds
from benchmarks.timing import summarise

HMAC_KEY = "benchmark-audit-key-0123456789abcdef"
SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"
FAMILY = "calciphylaxis-risk-after-bone-scan"


def seed(database: Path, snoozes: int, snoozed_patient: str, findings: list[str], band: str) -> None:
    """A migrated store with ``snoozes`` snoozes of other patients and one for ``snoozed_patient``."""
    from sqlalchemy import insert

    from cds.store.database import close_engine, create_store_engine, migrate
    from cds.store.models import CardSnooze

    engine = create_store_engine(f"sqlite:///{database}")
    migrate(engine)
    now = datetime.now(UTC)

    def row(patient: str, family: str) -> dict:
        return {
            "patient_hash": hmac.new(HMAC_KEY.encode(), patient.encode(), hashlib.sha256).hexdigest(),
            "card_family": family,
            "card_uuid": str(uuid.uuid4()),
            "reason_code": "already-discussed",
            "band": band,
            "findings": orjson.dumps(findings).decode(),
            "snoozed_at": now,
            "until": now + timedelta(days=30),
        }

    families = [FAMILY, "radiology-differential-recent-report", "thiosulfate-monitoring"]
    rows = [row(f"patient-{i}", families[i % 3]) for i in range(snoozes)] + [row(snoozed_patient, FAMILY)]
    with engine.begin() as connection:
        for start in range(0, len(rows), 1000):
            connection.execute(insert(CardSnooze.__table__), rows[start : start + 1000])
    # close_engine, not dispose: the store keeps one SQLite connection open for the engine's life, and until
    # it closes the rows may sit in the write-ahead log beside the file, where a copy of the file misses them.
    close_engine(engine)


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite store (the backup API reads through the write-ahead log)."""
    import sqlite3

    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def request_for(patient: str) -> bytes:
    body = orjson.loads(SOURCE_CASE.read_bytes())
    old = body["context"]["patientId"]
    # Every reference to the patient moves with it: the service drops resources about another patient.
    text = orjson.dumps(body).decode().replace(f'"Patient/{old}"', f'"Patient/{patient}"')
    body = orjson.loads(text)
    body["context"]["patientId"] = patient
    body["prefetch"]["patient"]["id"] = patient
    return orjson.dumps(body)


def card_state_of(base_url: str, body: bytes) -> tuple[list[str], str]:
    """The findings and band of the source case's card, as the service puts them on the card."""
    answer = httpx.post(f"{base_url}{HOOK_PATH}", content=body, headers={"Content-Type": "application/json"}).json()
    (card,) = answer["cards"]
    state = card["extension"]["org.calciphylaxis-cds.ruleset"]
    return state["findings"], state["band"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=40, help="requests per server per round (interleaved)")
    parser.add_argument("--snoozes", type=int, default=20000, help="snoozes of other patients in the store")
    parser.add_argument("--max-ratio", type=float, default=1.10)
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cds-bench-snooze-"))
    servers = {}
    try:
        env = {"CDS_AUDIT_HMAC_KEY": HMAC_KEY}
        probe_dir = tmp / "probe"
        probe_dir.mkdir()
        probe = start_cds("probe", 1, probe_dir, REPO / "rules", {**env, "CDS_SNOOZE_ENABLED": "false"})
        try:
            findings, band = card_state_of(probe.base_url, request_for("probe-patient"))
        finally:
            probe.stop()
        seeded = tmp / "seeded.sqlite3"
        seed(seeded, args.snoozes, "bench-snoozed", findings, band)
        bodies = {
            "off": request_for("bench-open"),
            "on, not snoozed": request_for("bench-open"),
            "on, snoozed": request_for("bench-snoozed"),
        }
        for name, enabled in (("off", "false"), ("on, not snoozed", "true"), ("on, snoozed", "true")):
            folder = tmp / name.replace(", ", "-").replace(" ", "-")
            folder.mkdir()
            copy_store(seeded, folder / "cds.sqlite3")  # cds_env points CDS_DATABASE_URL at folder/cds.sqlite3
            servers[name] = start_cds(
                name.replace(", ", "-").replace(" ", "-"),
                1,
                folder,
                REPO / "rules",
                {**env, "CDS_SNOOZE_ENABLED": enabled},
            )
        samples: dict[str, list[float]] = {name: [] for name in servers}
        cards: dict[str, int] = {}
        clients = {name: httpx.Client(base_url=s.base_url, timeout=10, trust_env=False) for name, s in servers.items()}
        headers = {"Content-Type": "application/json"}
        for name, client in clients.items():  # warm-up, and what each server answers
            for _ in range(5):
                cards[name] = len(client.post(HOOK_PATH, content=bodies[name], headers=headers).json()["cards"])
        for _ in range(args.rounds * args.requests):
            for name, client in clients.items():  # one request to each server in turn: noise falls on all alike
                started = time.perf_counter()
                response = client.post(HOOK_PATH, content=bodies[name], headers=headers)
                samples[name].append(time.perf_counter() - started)
                assert response.status_code == 200
        for client in clients.values():
            client.close()
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    stats = {name: summarise(values) for name, values in samples.items()}
    base = stats["off"].median_ms
    print(
        f"Hook latency with the snooze lookup ({args.snoozes:,} snoozes in the store; "
        f"{args.rounds} rounds x {args.requests} sequential requests per server)\n"
    )
    print("| server | cards sent | n | median ms | p90 ms | median / off |")
    print("|---|---|---|---|---|---|")
    for name, s in stats.items():
        print(f"| {name} | {cards[name]} | {s.n} | {s.median_ms:.2f} | {s.p90_ms:.2f} | {s.median_ms / base:.3f} |")
    # Requests to the three servers alternate, so the i-th request of each met the same moment of the
    # machine: the median of the paired differences is the lookup's cost with most of the noise removed.
    paired = {
        name: statistics.median(a - b for a, b in zip(samples[name], samples["off"], strict=True)) * 1000
        for name in samples
        if name != "off"
    }
    for name, added in paired.items():
        print(f"Paired: {name} adds a median of {added:+.2f} ms per request to the same request without the lookup.")
    worst = max(s.median_ms / base for name, s in stats.items() if name != "off")
    met = worst <= args.max_ratio
    print(
        f"\nTarget: the lookup adds at most {args.max_ratio - 1:.0%} to the median: "
        f"{'met' if met else 'MISSED'} (worst ratio {worst:.3f})."
    )
    if cards["on, snoozed"] != 0 or cards["off"] == 0 or cards["on, not snoozed"] == 0:
        print("The snoozed server sent a card, or another one sent none: the comparison is void.", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {
                    name: {
                        **dataclasses.asdict(s),
                        "cards": cards[name],
                        "ratio_to_off": s.median_ms / base,
                        "paired_added_ms": paired.get(name, 0.0),
                    }
                    for name, s in stats.items()
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
