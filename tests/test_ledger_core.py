"""Ledger building blocks without a store: canonical encoding, Merkle trees and proofs, keys,
records of a cleared run, block headers (SPEC C5)."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import p2pmarket
from ledger_support import Clock, records
from p2pmarket.errors import LedgerError
from p2pmarket.ledger import (
    BlockHeader,
    Record,
    append_run,
    canonical_text,
    generate_keypair,
    load_private_key,
    load_public_key,
    merkle_proof,
    merkle_root,
    root_from_proof,
    scenario_hash,
    settlement_records,
    trade_records,
)
from p2pmarket.ledger.blocks import make_block
from p2pmarket.ledger.merkle import EMPTY_ROOT, ProofStep

# ---- canonical encoding ---------------------------------------------------------------------


def test_canonical_encoding_is_pinned() -> None:
    value = {
        "b": Decimal("2.50"),
        "a": [1, 0.1, None, True, "é"],
        "t": datetime(2026, 5, 20, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        "z": {"y": -0.0, "x": 1e-7, "w": Decimal("1E+3")},
    }
    assert canonical_text(value) == (
        '{"a":[1,"0.1",null,true,"é"],"b":"2.5","t":"2026-05-20T12:00:00.000000Z",'
        '"z":{"w":"1000","x":"0.0000001","y":"0"}}'
    )


def test_canonical_encoding_does_not_depend_on_key_order_or_numpy() -> None:
    one = {"energy_kwh": 2.5, "period": 3, "seller": "P3"}
    other = {"seller": "P3", "period": np.int64(3), "energy_kwh": np.float64(2.5)}
    assert canonical_text(one) == canonical_text(other)


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), Decimal("NaN"), {1: "x"}, datetime(2026, 1, 1), object()],
)
def test_canonical_encoding_refuses_what_it_cannot_write_once(value: object) -> None:
    with pytest.raises(LedgerError):
        canonical_text({"v": value})


def test_record_id_is_sha256_of_the_canonical_bytes() -> None:
    record = Record.from_data({"seller": "P3", "kind": "trade", "energy_kwh": Decimal("60")})
    assert record.body == '{"energy_kwh":"60","kind":"trade","seller":"P3"}'
    assert record.record_id == hashlib.sha256(record.body.encode()).hexdigest()


# ---- Merkle tree ----------------------------------------------------------------------------


def _ids(n: int) -> list[str]:
    return [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]


def test_merkle_root_by_hand() -> None:
    a, b, c = _ids(3)

    def leaf(x: str) -> bytes:
        return hashlib.sha256(b"\x00" + bytes.fromhex(x)).digest()

    def node(x: bytes, y: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + x + y).digest()

    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256(b"").hexdigest()
    assert merkle_root([a]) == leaf(a).hex()
    assert merkle_root([a, b, c]) == node(node(leaf(a), leaf(b)), leaf(c)).hex()
    # No duplication of the odd node: [a, b, c] and [a, b, c, c] have different roots.
    assert merkle_root([a, b, c]) != merkle_root([a, b, c, c])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 17])
def test_every_merkle_proof_leads_to_the_root(n: int) -> None:
    ids = _ids(n)
    root = merkle_root(ids)
    for i in range(n):
        path = merkle_proof(ids, i)
        assert root_from_proof(ids[i], path) == root
        assert root_from_proof(_ids(n + 1)[-1], path) != root  # another record does not
        if path:
            flipped = ProofStep("left" if path[0].side == "right" else "right", path[0].hash)
            assert root_from_proof(ids[i], (flipped, *path[1:])) != root


# ---- keys -----------------------------------------------------------------------------------


def test_keygen_writes_an_owner_only_private_key(tmp_path: Path) -> None:
    private, public = generate_keypair(tmp_path / "keys" / "manager.key")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public == tmp_path / "keys" / "manager.key.pub"
    assert len(load_public_key(public)) == 64
    load_private_key(private)
    with pytest.raises(LedgerError, match="refusing to overwrite"):
        generate_keypair(private)
    old = private.read_bytes()
    generate_keypair(private, overwrite=True)
    assert private.read_bytes() != old
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_keygen_ignores_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        private, _ = generate_keypair(tmp_path / "k")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600


def test_private_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    private, _ = generate_keypair(tmp_path / "k")
    private.chmod(0o644)
    with pytest.raises(LedgerError, match="chmod 600"):
        load_private_key(private)


def test_bad_key_files_are_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_text("not a key")
    junk.chmod(0o600)
    with pytest.raises(LedgerError, match="not an unencrypted PEM private key"):
        load_private_key(junk)
    with pytest.raises(LedgerError, match="not a PEM public key"):
        load_public_key(junk)
    with pytest.raises(LedgerError, match="cannot read"):
        load_private_key(tmp_path / "absent")
    hex_key = tmp_path / "hex.pub"
    hex_key.write_text("AB" * 32 + "\n")
    assert load_public_key(hex_key) == "ab" * 32


# ---- records of a cleared run, determinism ----------------------------------------------------


@pytest.fixture(scope="module")
def case_result() -> p2pmarket.ClearingResult:
    return p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))


def test_trade_records_hold_the_trades(case_result: p2pmarket.ClearingResult) -> None:
    recs = trade_records(case_result.trades)
    assert len(recs) == len(case_result.trades)
    first, row = recs[0].data, case_result.trades.iloc[0]
    assert first["kind"] == "trade" and first["priced_by"] == "fee"
    assert (first["period"], first["seller"], first["buyer"]) == (
        row["period"],
        row["seller"],
        row["buyer"],
    )
    assert Decimal(first["energy_kwh"]) == Decimal(repr(float(row["energy_kwh"]))).quantize(
        Decimal("1e-9")
    )
    assert Decimal(first["price_per_kwh"]) == Decimal(first["fee_per_kwh"])
    assert Decimal(first["amount"]) == Decimal(first["fee"])


def test_trade_records_use_a_price_when_the_table_has_one(
    case_result: p2pmarket.ClearingResult,
) -> None:
    trades = case_result.trades.assign(price_per_kwh=0.05)
    data = trade_records(trades)[0].data
    assert data["priced_by"] == "price" and data["price_per_kwh"] == "0.05"
    energy = float(trades["energy_kwh"].iloc[0])
    assert Decimal(data["amount"]) == Decimal(repr(energy * 0.05)).quantize(Decimal("1e-9"))


def test_settlement_lines_become_records() -> None:
    lines = pd.DataFrame(
        {"peer": ["P2", "P3"], "bill": [6.72, np.nan], "rule": ["marginal", "marginal"]}
    )
    recs = settlement_records(lines)
    assert [r.data for r in recs] == [
        {"kind": "settlement", "peer": "P2", "bill": "6.72", "rule": "marginal"},
        {"kind": "settlement", "peer": "P3", "bill": None, "rule": "marginal"},
    ]
    with pytest.raises(LedgerError, match="peer"):
        settlement_records(pd.DataFrame({"bill": [1.0]}))


def test_same_run_same_hashes(case_result: p2pmarket.ClearingResult, tmp_path: Path) -> None:
    """Everything but the timestamp is deterministic: with the same clock, two ledgers built
    from the same run are identical; with another clock only the block hash changes."""
    key, _ = generate_keypair(tmp_path / "k")
    again = p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))
    one = append_run(f"sqlite:///{tmp_path / 'a.db'}", key, case_result, clock=Clock())
    two = append_run(f"sqlite:///{tmp_path / 'b.db'}", key, again, clock=Clock())
    assert one == two
    assert one.header.scenario_hash == scenario_hash(case_result.scenario)
    later = Clock()
    later.now += timedelta(days=1)
    three = append_run(f"sqlite:///{tmp_path / 'c.db'}", key, again, clock=later)
    assert three.header.merkle_root == one.header.merkle_root
    assert [r.record_id for r in three.records] == [r.record_id for r in one.records]
    assert three.block_hash != one.block_hash


def test_scenario_hash_follows_the_scenario(case_result: p2pmarket.ClearingResult) -> None:
    data = case_result.scenario.to_dict()
    assert scenario_hash(p2pmarket.Scenario.from_dict(data)) == scenario_hash(case_result.scenario)
    data["peers"][1]["load_kw"] = 141
    assert scenario_hash(p2pmarket.Scenario.from_dict(data)) != scenario_hash(case_result.scenario)


# ---- headers --------------------------------------------------------------------------------


def test_header_round_trip_and_refusals(tmp_path: Path) -> None:
    key = load_private_key(generate_keypair(tmp_path / "k")[0])
    block = make_block(
        key,
        height=1,
        previous_hash="ab" * 32,
        timestamp=datetime(2026, 5, 20, tzinfo=UTC),
        records=records(1, 3),
        scenario_hash="cd" * 32,
        run={"scenario": "x"},
    )
    text = block.header.canonical().decode()
    assert BlockHeader.parse(text) == block.header
    with pytest.raises(ValueError, match="canonical"):
        BlockHeader.parse(text.replace('"height":1', '"height": 1'))
    with pytest.raises(ValueError, match="fields"):
        BlockHeader.parse(text.replace('"height":1', '"depth":1'))
    with pytest.raises(ValueError, match="type"):
        BlockHeader.parse(text.replace('"height":1', '"height":"1"'))
    with pytest.raises(ValueError, match="not JSON"):
        BlockHeader.parse(text[:-1])


# ---- shape ----------------------------------------------------------------------------------


def test_the_core_does_not_import_the_ledger() -> None:
    code = (
        "import sys\n"
        "import p2pmarket, p2pmarket.core.solve.lp, p2pmarket.core.results\n"
        "print('\\n'.join(sorted(sys.modules)))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [m for m in loaded if m.startswith(("p2pmarket.ledger", "psycopg"))]


def test_ledger_public_surface_is_pinned() -> None:
    assert sorted(p2pmarket.ledger.__all__) == sorted(
        [
            "FORMAT",
            "Block",
            "BlockHeader",
            "LedgerStore",
            "ProofStep",
            "Reason",
            "Record",
            "RecordProof",
            "SignedHead",
            "VerificationReport",
            "append_records",
            "append_run",
            "canonical_bytes",
            "canonical_text",
            "generate_keypair",
            "load_private_key",
            "load_public_key",
            "merkle_proof",
            "merkle_root",
            "open_store",
            "prove",
            "root_from_proof",
            "scenario_hash",
            "settlement_records",
            "sha256_hex",
            "signed_head",
            "trade_records",
            "verify",
            "verify_proof",
        ]
    )
    for name in p2pmarket.ledger.__all__:
        assert getattr(p2pmarket.ledger, name) is not None
