"""The tamper suite at scale: N tampered ledgers per store (default 1,000), each checked
through the command line (verify, show, export, prove, and an append after it); prints the
counts. The targets: 0 tracebacks, 0 laundered truncations or tampered ledgers, 0 re-signed
chains accepted by default.

    python benchmarks/ledger_tamper.py [N]

PostgreSQL too when P2PMARKET_TEST_POSTGRES_URL is set (e.g. after `source .ci/postgres.sh`).
The property and its mutations are those of tests/test_ledger_tamper.py.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ledger_support import POSTGRES_ENV
from p2pmarket.ledger import generate_keypair, open_store, verify
from test_ledger_tamper import (
    build_template,
    copy_of,
    resign,
    run_tamper_property,
)


def main(examples: int) -> int:
    stores = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_ENV) else [])
    failures = 0
    for kind in stores:
        with tempfile.TemporaryDirectory() as folder:
            template = build_template(kind, Path(folder))
            tally: Counter[str] = Counter()
            started = time.perf_counter()
            try:
                run_tamper_property(template, examples, tally)
                tracebacks = 0
            except BaseException as exc:  # a failing example: the property does not hold
                print(f"{kind}: FAILED: {exc!r}"[:2000])
                tracebacks = 1
            seconds = time.perf_counter() - started
            intruder = generate_keypair(Path(folder) / "intruder.key")[0]
            with copy_of(template) as url:
                resign(url, intruder)
                pinned = kind == "sqlite"
                try:
                    with open_store(url) as store:
                        accepted = int(verify(store).ok) if pinned else 0
                except Exception:
                    accepted = 0
            print(
                f"{kind}: {tally['ledgers']} tampered ledgers in {seconds:.0f} s: "
                f"{tally['caught']} caught, {tally['inert']} inert; appends after: "
                f"{tally['append refused']} refused, {tally['append kept the failure']} still "
                f"caught, {tally['laundered']} laundered; failing examples: {tracebacks}; "
                f"re-signed chains accepted by default: {accepted}"
            )
            failures += tracebacks + tally["laundered"] + accepted
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
