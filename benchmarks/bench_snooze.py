"""The hook's HTTP latency with the snooze lookup, as a ratio to the same service without it (issue 15).

Three servers (``cds serve``, one worker each, 127.0.0.1 only) answer the source case:

* ``off``: ``CDS_SNOOZE_ENABLED=false``, no lookup (the baseline);
* ``on, not snoozed``: the lookup runs and finds nothing for this patient (every card is sent);
* ``on, snoozed``: the lookup finds the patient's snooze and hides the card.

Each starts from a copy of one SQLite store seeded with ``--snoozes`` snoozes of other patients, so that
the lookup meets a realistic table through its index. Requests are sequential (one client), and the
three servers are driven in turns, one request each, so that the machine's noise falls on all of them
alike. Reported: medians and p90 per server, the ratio of medians to ``off``, and the paired figures: the
median over turns of each request's difference from, and ratio to, the ``off`` request of the same turn
(pairing removes most of the drift of a shared machine). Then the lookup alone (``active_snoozes`` in
this process on a copy of the same store, for a patient with and one without a snooze), and the load
average. Targets: the worst paired ratio at most 1.10 (``--max-ratio``) and the lookup's median under
1 ms (``--max-lookup-ms``, issue 20); the exit status says whether both were met.

    .venv/bin/python -m benchmarks.bench_snooze                  # about a minute on 2 cores
    .venv/bin/python -m benchmarks.bench_snooze --rounds 3 --requests 20 --snoozes 1000
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import hmac
import os
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
from benchmarks.http import HOOK_PATH, Server, start_cds
from benchmarks.results import Stats
from benchmarks.timing import summarise

HMAC_KEY = "benchmark-audit-key-0123456789abcdef"
SOURCE_CASE = REPO / "fhir_examples" / "requests" / "source-case.patient-view.json"
FAMILY = "calciphylaxis-risk-after-bone-scan"
SERVICE = "calciphylaxis-risk"  # the service HOOK_PATH calls


def snoozable_families() -> list[str]:
    """The card families the hook path looks up for this service: those that declare a snooze."""
    from cds.cards.snooze import snooze_policies
    from cds.pipeline import Pipeline

    ruleset = Pipeline.load(REPO / "rules").ruleset
    return sorted(f for f in snooze_policies(ruleset) if SERVICE in ruleset.cards[f].services)


def seed(
    database: Path, snoozes: int, snoozed_patient: str, findings: list[str], band: str, families: list[str]
) -> None:
    """A migrated store with ``snoozes`` snoozes of other patients (over ``families``) and one for
    ``snoozed_patient``."""
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

    rows = [row(f"patient-{i}", families[i % len(families)]) for i in range(snoozes)] + [row(snoozed_patient, FAMILY)]
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


def lookup_latency(
    seeded: Path, folder: Path, patients: dict[str, str], families: list[str], requests: int
) -> dict[str, Stats]:
    """The store's lookup alone (``active_snoozes``, as the hook path calls it), in this process, on a copy of
    the seeded store: for a patient with a snooze and one without, alternating. Issue 20: under 1 ms."""
    from cds.store.snooze import active_snoozes
    from cds.store.store import Store

    copy_store(seeded, folder / "lookup.sqlite3")
    store = Store.open(f"sqlite:///{folder / 'lookup.sqlite3'}", HMAC_KEY.encode())
    try:
        hashes = {name: store.patient_hash(patient) or "" for name, patient in patients.items()}
        samples: dict[str, list[float]] = {name: [] for name in patients}
        for turn in range(requests + 20):  # the first 20 warm the connection and the page cache
            for name, patient_hash in hashes.items():
                started = time.perf_counter()
                found = active_snoozes(store, patient_hash, families, datetime.now(UTC))
                if turn >= 20:
                    samples[name].append(time.perf_counter() - started)
                assert bool(found) == (name == "snoozed"), (name, found)
    finally:
        store.close()
    return {name: summarise(values) for name, values in samples.items()}


def drive(servers: dict[str, Server], bodies: dict[str, bytes], turns: int) -> tuple[dict[str, list[float]], dict]:
    """One request to each server in turn, ``turns`` times: the i-th request of each met the same moment of the
    machine. Returns the latencies per server and how many cards each sent."""
    samples: dict[str, list[float]] = {name: [] for name in servers}
    cards: dict[str, int] = {}
    headers = {"Content-Type": "application/json"}
    clients = {name: httpx.Client(base_url=s.base_url, timeout=10, trust_env=False) for name, s in servers.items()}
    try:
        for name, client in clients.items():  # warm-up, and what each server answers
            for _ in range(5):
                cards[name] = len(client.post(HOOK_PATH, content=bodies[name], headers=headers).json()["cards"])
        for _ in range(turns):
            for name, client in clients.items():
                started = time.perf_counter()
                response = client.post(HOOK_PATH, content=bodies[name], headers=headers)
                samples[name].append(time.perf_counter() - started)
                assert response.status_code == 200
    finally:
        for client in clients.values():
            client.close()
    return samples, cards


def paired(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Per server, against ``off`` request by request: the median of the differences (ms) and of the ratios.
    Pairing removes most of the machine's drift, which moves the plain medians between runs."""
    base = samples["off"]
    return {
        name: {
            "added_ms": statistics.median(a - b for a, b in zip(values, base, strict=True)) * 1000,
            "ratio": statistics.median(a / b for a, b in zip(values, base, strict=True)),
        }
        for name, values in samples.items()
    }


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    env = {"CDS_AUDIT_HMAC_KEY": HMAC_KEY}
    probe_dir = tmp / "probe"
    probe_dir.mkdir()
    probe = start_cds("probe", 1, probe_dir, REPO / "rules", {**env, "CDS_SNOOZE_ENABLED": "false"})
    try:
        findings, band = card_state_of(probe.base_url, request_for("probe-patient"))
    finally:
        probe.stop()
    seeded = tmp / "seeded.sqlite3"
    families = snoozable_families()
    seed(seeded, args.snoozes, "bench-snoozed", findings, band, families)
    patients = {"not snoozed": "bench-open", "snoozed": "bench-snoozed"}
    lookup = lookup_latency(seeded, tmp, patients, families, args.lookups)
    bodies = {
        "off": request_for("bench-open"),
        "on, not snoozed": request_for("bench-open"),
        "on, snoozed": request_for("bench-snoozed"),
    }
    servers: dict[str, Server] = {}
    try:
        for name, enabled in (("off", "false"), ("on, not snoozed", "true"), ("on, snoozed", "true")):
            folder = tmp / name.replace(", ", "-").replace(" ", "-")
            folder.mkdir()
            copy_store(seeded, folder / "cds.sqlite3")  # cds_env points CDS_DATABASE_URL at folder/cds.sqlite3
            servers[name] = start_cds(folder.name, 1, folder, REPO / "rules", {**env, "CDS_SNOOZE_ENABLED": enabled})
        samples, cards = drive(servers, bodies, args.rounds * args.requests)
    finally:
        for server in servers.values():
            server.stop()
    return {"samples": samples, "cards": cards, "lookup": lookup}


def report(args: argparse.Namespace, measured: dict, load: tuple[tuple[float, ...], tuple[float, ...]]) -> dict:
    samples, cards, lookup = measured["samples"], measured["cards"], measured["lookup"]
    stats = {name: summarise(values) for name, values in samples.items()}
    pairs = paired(samples)
    base = stats["off"].median_ms
    print(
        f"Hook latency with the snooze lookup ({args.snoozes:,} snoozes in the store; "
        f"{args.rounds} rounds x {args.requests} sequential requests per server, alternating; "
        f"load average {load[0][0]:.2f} before, {load[1][0]:.2f} after)\n"
    )
    print("| server | cards sent | n | median ms | p90 ms | median / off | paired: added ms | paired: ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for name, s in stats.items():
        pair = pairs[name]
        print(
            f"| {name} | {cards[name]} | {s.n} | {s.median_ms:.2f} | {s.p90_ms:.2f} | {s.median_ms / base:.3f} "
            f"| {pair['added_ms']:+.2f} | {pair['ratio']:.3f} |"
        )
    print("\nThe lookup alone (active_snoozes, in process, same store):")
    for name, s in lookup.items():
        print(f"  {name}: median {s.median_ms:.3f} ms, p90 {s.p90_ms:.3f} ms (n={s.n})")
    worst = max(pairs[name]["ratio"] for name in pairs if name != "off")
    lookup_worst = max(s.median_ms for s in lookup.values())
    met = worst <= args.max_ratio and lookup_worst < args.max_lookup_ms
    print(
        f"\nTargets: the lookup adds at most {args.max_ratio - 1:.0%} to the hook's latency (worst paired ratio "
        f"{worst:.3f}) and takes under {args.max_lookup_ms:g} ms (median {lookup_worst:.3f} ms): "
        f"{'met' if met else 'MISSED'}."
    )
    return {
        "met": met,
        "load_average": {"before": list(load[0]), "after": list(load[1])},
        "lookup": {name: dataclasses.asdict(s) for name, s in lookup.items()},
        **{
            name: {
                **dataclasses.asdict(s),
                "cards": cards[name],
                "ratio_to_off": s.median_ms / base,
                "paired_added_ms": pairs[name]["added_ms"],
                "paired_ratio": pairs[name]["ratio"],
            }
            for name, s in stats.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=40, help="requests per server per round (interleaved)")
    parser.add_argument("--snoozes", type=int, default=20000, help="snoozes of other patients in the store")
    parser.add_argument("--lookups", type=int, default=500, help="timed in-process lookups per patient")
    parser.add_argument("--max-ratio", type=float, default=1.10, help="target for the worst paired ratio to off")
    parser.add_argument("--max-lookup-ms", type=float, default=1.0, help="target for the lookup's median")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="cds-bench-snooze-"))
    try:
        before = os.getloadavg()
        measured = measure(args, tmp)
        after = os.getloadavg()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results = report(args, measured, (before, after))
    cards = measured["cards"]
    if cards["on, snoozed"] != 0 or cards["off"] == 0 or cards["on, not snoozed"] == 0:
        print("The snoozed server sent a card, or another one sent none: the comparison is void.", file=sys.stderr)
        return 2
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    return 0 if results["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
