"""Ledger throughput: blocks of 1,000 trade records appended and verified per second, on
SQLite and (when P2PMARKET_TEST_POSTGRES_URL is set, e.g. after `source .ci/postgres.sh`)
PostgreSQL.

    python benchmarks/ledger_throughput.py [BLOCKS] [RECORDS_PER_BLOCK]

Appending includes building the records (canonical encoding, ids), the Merkle root, signing
and the durable commit (SQLite `synchronous=FULL`; PostgreSQL with the server's settings);
verifying reads every block back and recomputes every hash, root and signature.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

from p2pmarket.ledger import (
    Record,
    append_records,
    generate_keypair,
    load_public_key,
    open_store,
    verify,
)


def trade_records(block: int, count: int) -> list[Record]:
    """`count` trade records like those of a cleared run (unique per block)."""
    return [
        Record.from_data(
            {
                "kind": "trade",
                "period": i % 24,
                "seller": f"P{i % 97}",
                "buyer": f"P{(i * 7 + block) % 101}",
                "route": "p2p",
                "energy_kwh": Decimal(f"{(i * 37 + block) % 500}.125"),
                "price_per_kwh": Decimal("0.0512"),
                "amount": Decimal(f"{(i * 37 + block) % 500}.125") * Decimal("0.0512"),
                "fee_per_kwh": Decimal("0.0216"),
                "fee": Decimal(f"{(i * 37 + block) % 500}.125") * Decimal("0.0216"),
                "priced_by": "price",
            }
        )
        for i in range(count)
    ]


def measure(label: str, url: str, key: Path, blocks: int, per_block: int) -> None:
    with open_store(url, create=True) as store:
        append_records(store, key, trade_records(0, 1), scenario_hash=None, run=None)  # genesis
        start = time.perf_counter()
        for b in range(1, blocks + 1):
            append_records(store, key, trade_records(b, per_block), scenario_hash=None, run=None)
        append_seconds = time.perf_counter() - start
    with open_store(url) as store:
        start = time.perf_counter()
        report = verify(store, load_public_key(key.with_name(key.name + ".pub")))
        verify_seconds = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(f"{label}: the ledger does not verify: {report.failure}")
    total = report.blocks_checked  # genesis and the warm-up block are verified too
    print(
        f"{label:<11} append {blocks / append_seconds:7.1f} blocks/s "
        f"({append_seconds / blocks * 1000:6.1f} ms per block of {per_block} records)   "
        f"verify {total / verify_seconds:7.1f} blocks/s "
        f"({verify_seconds / total * 1000:6.1f} ms per block)"
    )


def main() -> None:
    blocks = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    per_block = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    with tempfile.TemporaryDirectory() as tmp:
        key = generate_keypair(Path(tmp) / "bench.key")[0]
        measure("sqlite", f"sqlite:///{Path(tmp) / 'ledger.db'}", key, blocks, per_block)
        base = os.environ.get("P2PMARKET_TEST_POSTGRES_URL")
        if not base:
            print("postgresql  skipped: P2PMARKET_TEST_POSTGRES_URL is not set")
            return
        import psycopg

        schema = f"ledger_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(base, autocommit=True) as db:
            db.execute(f"CREATE SCHEMA {schema}")
        try:
            separator = "&" if "?" in base else "?"
            url = f"{base}{separator}options={quote(f'-csearch_path={schema}')}"
            measure("postgresql", url, key, blocks, per_block)
        finally:
            with psycopg.connect(base, autocommit=True) as db:
                db.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
