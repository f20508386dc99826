"""Tampering with the bytes of a SQLite ledger file, as a text or hex editor would: `verify`
names the block and the reason; a file damaged beyond reading fails too (SPEC C5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger_support import Clock, records
from p2pmarket.errors import LedgerError
from p2pmarket.ledger import Reason, append_records, generate_keypair, open_store, verify
from p2pmarket.ledger.store import sqlite_path


@pytest.fixture
def ledger_file(tmp_path: Path) -> Path:
    """A closed SQLite ledger: genesis, then blocks 1-4 of 6 records."""
    key = generate_keypair(tmp_path / "k")[0]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    clock = Clock()
    for b in range(1, 5):
        append_records(url, key, records(b, 6), scenario_hash=None, run=None, clock=clock)
    return Path(sqlite_path(url))


def _edit(path: Path, find: bytes, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) inside the one occurrence of `find` in the file."""
    data = bytearray(path.read_bytes())
    assert data.count(find) == 1, f"{find!r} occurs {data.count(find)} times"
    at = data.index(find) + find.index(old)
    data[at : at + len(old)] = new
    path.write_bytes(bytes(data))


def _stored(path: Path, height: int) -> tuple[str, str, str]:
    """Header, signature and the body of record 3 of block `height`."""
    with open_store(f"sqlite:///{path}") as store:
        block = store.block(height)
    assert block is not None
    return block.header, block.signature, block.records[3].body


def _failure(path: Path) -> tuple[int | None, str]:
    with open_store(f"sqlite:///{path}") as store:
        report = verify(store)
    assert report.failure is not None
    return report.failure.height, report.failure.reason


def test_the_untouched_file_verifies(ledger_file: Path) -> None:
    with open_store(f"sqlite:///{ledger_file}") as store:
        assert verify(store).ok


def test_byte_edit_of_a_record(ledger_file: Path) -> None:
    _, _, body = _stored(ledger_file, 2)
    _edit(ledger_file, body.encode(), b'"energy_kwh":"12.5"', b'"energy_kwh":"72.5"')
    assert _failure(ledger_file) == (2, Reason.CHANGED_RECORD)


def test_byte_edit_of_a_header(ledger_file: Path) -> None:
    header, _, _ = _stored(ledger_file, 3)
    _edit(ledger_file, header.encode(), b'"record_count":6', b'"record_count":5')
    assert _failure(ledger_file) == (3, Reason.BAD_SIGNATURE)


def test_byte_edit_of_a_signature(ledger_file: Path) -> None:
    _, signature, _ = _stored(ledger_file, 1)
    flipped = b"0" if signature[10] != "0" else b"1"
    _edit(ledger_file, signature.encode(), signature[10].encode(), flipped)
    assert _failure(ledger_file) == (1, Reason.BAD_SIGNATURE)


def test_a_damaged_file_does_not_verify(ledger_file: Path) -> None:
    data = bytearray(ledger_file.read_bytes())
    page = 4096
    data[page * 2 : page * 3] = b"\xff" * page  # one page of the tables overwritten
    ledger_file.write_bytes(bytes(data))
    try:
        with open_store(f"sqlite:///{ledger_file}") as store:
            report = verify(store)
    except LedgerError:
        return  # not even openable: refused with a LedgerError
    assert not report.ok


def test_a_cut_file_does_not_verify(ledger_file: Path) -> None:
    data = ledger_file.read_bytes()
    ledger_file.write_bytes(data[: len(data) // 2])
    try:
        with open_store(f"sqlite:///{ledger_file}") as store:
            report = verify(store)
    except LedgerError:
        return
    assert not report.ok
