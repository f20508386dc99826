"""The ledger on both stores (SQLite and PostgreSQL), the same tests for each (SPEC C5).

Appends and verification; appending with another key is refused; Merkle proofs that check
without the rest of the block; and tampering: each kind of edit an attacker with access to
the database can make, done with SQL on the store's tables, must make `verify` fail at the
right block for the right reason. A hypothesis test flips a random field of a random record.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_support import STORES, Clock, fresh_ledger_url, records, sql
from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.ledger import (
    Reason,
    RecordProof,
    append_records,
    canonical_text,
    generate_keypair,
    load_private_key,
    load_public_key,
    open_store,
    prove,
    sha256_hex,
    verify,
    verify_proof,
)
from p2pmarket.ledger.blocks import make_block

BLOCKS, RECORDS = 4, 6
"""The `chain` fixture: the genesis block, then blocks 1-4 of 6 records each."""


@pytest.fixture(params=STORES)
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_ledger_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def key(tmp_path: Path) -> Path:
    return generate_keypair(tmp_path / "manager.key")[0]


@pytest.fixture
def chain(ledger_url: str, key: Path) -> str:
    clock = Clock()
    for b in range(1, BLOCKS + 1):
        append_records(
            ledger_url,
            key,
            records(b, RECORDS),
            scenario_hash=sha256_hex(b"scenario %d" % b),
            run={"scenario": f"run {b}"},
            clock=clock,
        )
    return ledger_url


def given_key(url: str) -> str | None:
    """The key a test verifies a ledger against: None on SQLite (its pinned key, the default),
    and on PostgreSQL, which pins none, the genesis block's key read by SQL, standing in for
    the manager's public key given with `--pubkey` (None for a ledger without a readable
    genesis block). For tests of where and why a tampered ledger fails, not of whose key."""
    if url.startswith("sqlite:"):
        return None
    try:
        rows = sql(url, "SELECT header FROM ledger_blocks WHERE height = 0")
        key = json.loads(rows[0][0])["public_key"] if rows else None
    except Exception:  # a dropped table, a damaged header: no key to give
        return None
    return key if isinstance(key, str) else None


def failure(url: str, public_key: str | None = None) -> LedgerIntegrityError:
    with open_store(url) as store:
        report = verify(store, public_key or given_key(url))
    assert report.failure is not None, report.summary()
    assert not report.ok
    return report.failure


def assert_fails(url: str, height: int, reason: Reason, match: str = "") -> None:
    error = failure(url)
    assert (error.height, error.reason) == (height, reason), str(error)
    assert match in str(error)
    assert str(error).startswith(f"block {height}: {reason.value}: ")


# ---- appends --------------------------------------------------------------------------------


def test_appends_chain_and_verify(chain: str, key: Path) -> None:
    with open_store(chain) as store:
        report = verify(store, load_public_key(key.with_name("manager.key.pub")))
        assert report.ok, report.summary()
        assert (report.blocks_checked, report.records_checked) == (BLOCKS + 1, BLOCKS * RECORDS)
        head = store.head()
        assert head is not None and head.height == BLOCKS
        assert report.head_hash == head.block_hash
        genesis = store.block(0)
        assert genesis is not None and genesis.records == ()
        assert json.loads(genesis.header)["public_key"] == report.public_key
        hashes = [b.block_hash for b in store.blocks(with_records=False)]
    assert len(set(hashes)) == BLOCKS + 1
    assert [h for (h,) in sql(chain, "SELECT height FROM ledger_blocks ORDER BY height")] == list(
        range(BLOCKS + 1)
    )


def test_appending_with_another_key_is_refused(chain: str, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "intruder.key")[0]
    with pytest.raises(LedgerError, match="belongs to key"):
        append_records(chain, other, records(9, 2), scenario_hash=None, run=None)
    with open_store(chain) as store:
        report = verify(store, given_key(chain))
    assert report.ok and report.blocks_checked == BLOCKS + 1


def test_opening_an_absent_ledger_is_refused(ledger_url: str) -> None:
    with pytest.raises(LedgerError, match=r"no ledger|holds no p2pmarket ledger"):
        open_store(ledger_url)


def test_an_empty_ledger_does_not_verify(ledger_url: str) -> None:
    open_store(ledger_url, create=True).close()
    error = failure(ledger_url)
    assert (error.height, error.reason) == (0, Reason.TRUNCATED_CHAIN)


# ---- Merkle proofs --------------------------------------------------------------------------


def test_a_proof_checks_without_the_rest_of_the_block(chain: str, key: Path) -> None:
    public_key = load_public_key(key.with_name("manager.key.pub"))
    with open_store(chain) as store:
        wanted = store.block(3)
        assert wanted is not None
        record_id = wanted.records[4].record_id
        (proof,) = prove(store, record_id[:12])
    # What travels: the record, its path and the signed header; the store is closed.
    carried = json.loads(json.dumps(proof.to_dict()))
    assert set(carried) == {
        "record_id",
        "record",
        "height",
        "position",
        "path",
        "header",
        "signature",
    }
    header = verify_proof(RecordProof.from_dict(carried), public_key)
    assert (header.height, proof.record_id, proof.position) == (3, record_id, 4)

    changed = dict(carried, record={**carried["record"], "energy_kwh": "99"})
    with pytest.raises(LedgerIntegrityError, match="changed record"):
        verify_proof(RecordProof.from_dict(changed), public_key)
    other_path = dict(carried, path=[{"side": "left", "hash": "00" * 32}, *carried["path"][1:]])
    with pytest.raises(LedgerIntegrityError, match="Merkle path"):
        verify_proof(RecordProof.from_dict(other_path), public_key)
    with pytest.raises(LedgerIntegrityError, match="wrong key"):
        verify_proof(proof, "ab" * 32)
    with pytest.raises(LedgerError, match="no record"):
        prove(open_store(chain), "0123456789abcdef")


# ---- tampering by SQL -----------------------------------------------------------------------


def _row(url: str, height: int, position: int) -> tuple[str, str]:
    ((body, record_id),) = sql(
        url,
        "SELECT body, record_id FROM ledger_records WHERE height = ? AND position = ?",
        (height, position),
    )
    return str(body), str(record_id)


def test_changed_record(chain: str) -> None:
    sql(
        chain,
        'UPDATE ledger_records SET body = replace(body, \'"energy_kwh":"12.5"\', '
        '\'"energy_kwh":"13.5"\') WHERE height = 2 AND position = 3',
    )
    assert_fails(chain, 2, Reason.CHANGED_RECORD, "record 3")


def test_changed_record_with_its_id_rewritten(chain: str) -> None:
    body, _ = _row(chain, 3, 1)
    forged = canonical_text({**json.loads(body), "amount": "0"})
    sql(
        chain,
        "UPDATE ledger_records SET body = ?, record_id = ? WHERE height = 3 AND position = 1",
        (forged, sha256_hex(forged.encode())),
    )
    assert_fails(chain, 3, Reason.CHANGED_RECORD, "Merkle root")


def test_removed_record(chain: str) -> None:
    sql(chain, "DELETE FROM ledger_records WHERE height = 3 AND position = 0")
    assert_fails(chain, 3, Reason.REMOVED_RECORD)


def test_added_record(chain: str) -> None:
    body, record_id = _row(chain, 1, 0)
    sql(
        chain,
        "INSERT INTO ledger_records (height, position, record_id, body) VALUES (2, ?, ?, ?)",
        (RECORDS, record_id, body),
    )
    assert_fails(chain, 2, Reason.ADDED_RECORD)


def test_reordered_records(chain: str) -> None:
    for old, new in ((0, -1), (1, 0), (-1, 1)):
        sql(
            chain,
            "UPDATE ledger_records SET position = ? WHERE height = 2 AND position = ?",
            (new, old),
        )
    assert_fails(chain, 2, Reason.CHANGED_RECORD, "Merkle root")


def test_removed_block(chain: str) -> None:
    sql(chain, "DELETE FROM ledger_blocks WHERE height = 2")
    sql(chain, "DELETE FROM ledger_records WHERE height = 2")
    assert_fails(chain, 2, Reason.MISSING_BLOCK)


def test_reordered_blocks(chain: str) -> None:
    for old, new in ((2, 100), (3, 2), (100, 3)):
        sql(chain, "UPDATE ledger_blocks SET height = ? WHERE height = ?", (new, old))
        sql(chain, "UPDATE ledger_records SET height = ? WHERE height = ?", (new, old))
    assert_fails(chain, 2, Reason.REORDERED_BLOCKS, "block 3 of the chain")


def test_truncated_chain(chain: str) -> None:
    sql(chain, f"DELETE FROM ledger_blocks WHERE height = {BLOCKS}")
    sql(chain, f"DELETE FROM ledger_records WHERE height = {BLOCKS}")
    assert_fails(chain, BLOCKS, Reason.TRUNCATED_CHAIN, f"names block {BLOCKS}")


def test_truncated_chain_with_its_head_removed(chain: str) -> None:
    sql(chain, f"DELETE FROM ledger_blocks WHERE height = {BLOCKS}")
    sql(chain, "DELETE FROM ledger_head")
    assert_fails(chain, BLOCKS, Reason.TRUNCATED_CHAIN, "head is missing")


def test_truncated_chain_with_its_head_rewritten(chain: str) -> None:
    ((previous_hash,),) = sql(
        chain, f"SELECT block_hash FROM ledger_blocks WHERE height = {BLOCKS - 1}"
    )
    sql(chain, f"DELETE FROM ledger_blocks WHERE height = {BLOCKS}")
    sql(chain, "UPDATE ledger_head SET height = ?, block_hash = ?", (BLOCKS - 1, previous_hash))
    assert_fails(chain, BLOCKS - 1, Reason.BAD_SIGNATURE, "head")


def test_block_beyond_the_head(chain: str) -> None:
    sql(
        chain,
        "INSERT INTO ledger_blocks (height, block_hash, header, signature) SELECT ?, ?, header, "
        "signature FROM ledger_blocks WHERE height = 1",
        (BLOCKS + 1, "ef" * 32),
    )
    assert_fails(chain, BLOCKS + 1, Reason.EXTRA_BLOCK, f"after block {BLOCKS}")


def test_dropped_table(chain: str) -> None:
    sql(chain, "DROP TABLE ledger_head")
    error = failure(chain)
    assert error.reason == Reason.UNREADABLE, str(error)


def test_changed_header(chain: str) -> None:
    sql(
        chain,
        "UPDATE ledger_blocks SET header = replace(header, 'T12:00:', 'T13:00:') WHERE height = 2",
    )
    assert_fails(chain, 2, Reason.BAD_SIGNATURE, "header or signature changed")


def test_unreadable_header(chain: str) -> None:
    sql(chain, "UPDATE ledger_blocks SET header = '{\"height\": 2}' WHERE height = 2")
    assert_fails(chain, 2, Reason.CHANGED_HEADER)


def test_changed_signature(chain: str) -> None:
    sql(
        chain,
        "UPDATE ledger_blocks SET signature = (SELECT signature FROM ledger_blocks WHERE "
        "height = 1) WHERE height = 3",
    )
    assert_fails(chain, 3, Reason.BAD_SIGNATURE)


def test_changed_block_hash(chain: str) -> None:
    sql(chain, "UPDATE ledger_blocks SET block_hash = ? WHERE height = 1", ("ab" * 32,))
    assert_fails(chain, 1, Reason.CHANGED_HEADER, "stored hash")


def _replace_block(url: str, height: int, signer: Path, previous_hash: str | None = None) -> None:
    """Put in place of block `height` a block with the same records, linked to the previous
    block unless `previous_hash` says otherwise, signed by `signer`'s key."""
    if previous_hash is None:
        ((previous_hash,),) = sql(
            url, "SELECT block_hash FROM ledger_blocks WHERE height = ?", (height - 1,)
        )
    forged = make_block(
        load_private_key(signer),
        height=height,
        previous_hash=str(previous_hash),
        timestamp=datetime(2026, 5, 21, tzinfo=UTC),
        records=records(height, RECORDS),
        scenario_hash=None,
        run=None,
    )
    sql(
        url,
        "UPDATE ledger_blocks SET header = ?, signature = ?, block_hash = ? WHERE height = ?",
        (forged.header.canonical().decode(), forged.signature, forged.block_hash, height),
    )


def test_block_signed_by_another_key(chain: str, tmp_path: Path) -> None:
    _replace_block(chain, BLOCKS, generate_keypair(tmp_path / "intruder.key")[0])
    assert_fails(chain, BLOCKS, Reason.WRONG_KEY, "not the ledger's key")


def test_block_from_another_chain(chain: str, key: Path) -> None:
    _replace_block(chain, 3, key, previous_hash="cd" * 32)
    assert_fails(chain, 3, Reason.BROKEN_LINK, "is not block 2's hash")


def test_ledger_of_another_key(chain: str, tmp_path: Path) -> None:
    other = generate_keypair(tmp_path / "other.key")[1]
    error = failure(chain, load_public_key(other))
    assert (error.height, error.reason) == (0, Reason.WRONG_KEY)
    assert "not the expected key" in str(error)


# ---- a random field of a random record --------------------------------------------------------


def _other_value(old: object) -> st.SearchStrategy[object]:
    values = st.one_of(
        st.text(max_size=6),
        st.integers(-(10**6), 10**6),
        st.decimals(allow_nan=False, allow_infinity=False, places=3).map(str),
        st.none(),
        st.booleans(),
    )
    return values.filter(lambda v: v != old or type(v) is not type(old))


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_flipping_any_field_of_any_record_is_caught(chain: str, data: st.DataObject) -> None:
    height = data.draw(st.integers(1, BLOCKS), label="height")
    position = data.draw(st.integers(0, RECORDS - 1), label="position")
    body, record_id = _row(chain, height, position)
    record = json.loads(body)
    field = data.draw(st.sampled_from(sorted(record)), label="field")
    record[field] = data.draw(_other_value(record[field]), label="new value")
    forged = canonical_text(record)
    assert forged != body
    rewrite_id = data.draw(st.booleans(), label="rewrite the id too")
    new_id = sha256_hex(forged.encode()) if rewrite_id else record_id
    update = "UPDATE ledger_records SET body = ?, record_id = ? WHERE height = ? AND position = ?"
    sql(chain, update, (forged, new_id, height, position))
    try:
        error = failure(chain)
        assert (error.height, error.reason) == (height, Reason.CHANGED_RECORD), str(error)
    finally:
        sql(chain, update, (body, record_id, height, position))
    with open_store(chain) as store:
        assert verify(store, given_key(chain)).ok
