"""`p2pmarket ledger ...` and `record_run` (SPEC C5, C8): exit codes 0 / 1 (does not
verify) / 2 (bad input), one line on stderr for every error, key file permissions, and the
issue's acceptance path: a cleared built-in case appended, verified, edited by hand, caught."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner, Result

import p2pmarket
from ledger_support import STORES, fresh_ledger_url, sql
from p2pmarket.app.record import record_run
from p2pmarket.app.run import MarketRun
from p2pmarket.cli.ledger_cmd import check_ledger_options, describe_append, ledger_app
from p2pmarket.errors import LedgerError
from p2pmarket.ledger import BlockHeader, sha256_hex
from p2pmarket.ledger.runs import append_run

EXIT_OK, EXIT_INTEGRITY, EXIT_INPUT = 0, 1, 2

app = typer.Typer()
app.add_typer(ledger_app, name="ledger")  # as the lead registers it in cli/main.py


@app.callback()
def _root() -> None:
    """Stand-in for the `p2pmarket` command."""


def invoke(*args: str | Path) -> Result:
    result = CliRunner().invoke(app, ["ledger", *(str(a) for a in args)])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


@pytest.fixture(scope="module")
def result() -> p2pmarket.ClearingResult:
    return p2pmarket.clear(p2pmarket.cases.load("five-peer-case-2"))


@pytest.fixture
def key(tmp_path: Path) -> Path:
    out = tmp_path / "manager.key"
    done = invoke("keygen", "--out", out)
    assert done.exit_code == EXIT_OK, done.stderr
    return out


def append(url: str, key: Path, result: p2pmarket.ClearingResult) -> str:
    run = p2pmarket.run_market(result.scenario)
    assert isinstance(run, MarketRun)
    return describe_append(record_run(run, url, key))


@pytest.fixture(params=STORES)
def ledger(
    request: pytest.FixtureRequest, tmp_path: Path, key: Path, result: p2pmarket.ClearingResult
) -> Iterator[str]:
    """A ledger holding two runs of the 5-peer Case II."""
    with fresh_ledger_url(request.param, tmp_path) as url:
        assert append(url, key, result).startswith("ledger: appended block 1 (")
        assert "appended block 2" in append(url, key, result)
        yield url


def test_keygen_files_and_permissions(tmp_path: Path, key: Path) -> None:
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert key.with_name("manager.key.pub").read_text().startswith("-----BEGIN PUBLIC KEY-----")
    again = invoke("keygen", "--out", key)
    assert again.exit_code == EXIT_INPUT
    assert "refusing to overwrite" in one_line(again.stderr)
    assert invoke("keygen", "--out", key, "--force").exit_code == EXIT_OK
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_acceptance_append_verify_hand_edit(ledger: str, key: Path) -> None:
    """From the issue: append a built-in case's run, verify, edit the database by hand, and
    verification fails naming the block."""
    done = invoke("verify", ledger, "--pubkey", key.with_name("manager.key.pub"))
    assert done.exit_code == EXIT_OK, done.stderr
    assert "ok, 3 blocks" in done.stdout

    sql(
        ledger,
        'UPDATE ledger_records SET body = replace(body, \'"seller":"P3"\', \'"seller":"P5"\')'
        " WHERE height = 2",
    )
    pinned = ledger.startswith("sqlite:")  # a SQLite ledger is verified against its pinned key
    failed = invoke(
        "verify", ledger, *([] if pinned else ["--pubkey", key.with_name("manager.key.pub")])
    )
    assert failed.exit_code == EXIT_INTEGRITY
    line = one_line(failed.stderr)
    assert line.startswith("error: ledger does not verify: block 2: changed record: record ")


def test_verify_with_another_key_and_bad_input(ledger: str, tmp_path: Path) -> None:
    other = invoke("keygen", "--out", tmp_path / "other.key")
    assert other.exit_code == EXIT_OK
    wrong = invoke("verify", ledger, "--pubkey", tmp_path / "other.key.pub")
    assert wrong.exit_code == EXIT_INTEGRITY
    assert "block 0: wrong key" in one_line(wrong.stderr)
    for args in (
        ("verify", ledger, "--pubkey", tmp_path / "absent.pub"),
        ("verify", f"sqlite:///{tmp_path / 'absent.db'}"),
        ("verify", "mysql://somewhere/db"),
        ("show", ledger, "--height", "9"),
        ("prove", ledger, "not-hex"),
        ("prove", ledger, "0123456789abcdef"),
    ):
        bad = invoke(*args)
        assert bad.exit_code == EXIT_INPUT, args
        one_line(bad.stderr)


def test_append_with_another_key_is_refused(
    ledger: str, tmp_path: Path, result: p2pmarket.ClearingResult
) -> None:
    invoke("keygen", "--out", tmp_path / "other.key")
    with pytest.raises(LedgerError, match="belongs to key"):
        append(ledger, tmp_path / "other.key", result)


def test_show(ledger: str) -> None:
    listing = invoke("show", ledger)
    assert listing.exit_code == EXIT_OK
    assert "five-peer-case-2" in listing.stdout and "(genesis)" in listing.stdout
    one = invoke("show", ledger, "--height", "1")
    assert one.exit_code == EXIT_OK
    assert '"kind":"trade"' in one.stdout and "merkle_root" in one.stdout


def test_export_holds_everything_to_check_again(ledger: str, tmp_path: Path) -> None:
    out = tmp_path / "ledger.jsonl"
    done = invoke("export", ledger, "--out", out)
    assert done.exit_code == EXIT_OK and "wrote 3 blocks" in done.stdout
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["height"] for line in lines] == [0, 1, 2]
    for line in lines:
        header = BlockHeader.parse(
            json.dumps(line["header"], sort_keys=True, separators=(",", ":"))
        )
        assert header.block_hash == line["block_hash"]
        assert header.record_count == len(line["records"])
        for record in line["records"]:
            body = json.dumps(
                record["record"], sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
            assert sha256_hex(body.encode()) == record["record_id"]


def test_prove_and_check_the_proof_alone(ledger: str, key: Path, tmp_path: Path) -> None:
    exported = tmp_path / "ledger.jsonl"
    invoke("export", ledger, "--out", exported)
    block_one = json.loads(exported.read_text().splitlines()[1])
    trade_id = block_one["records"][2]["record_id"]

    proof_file = tmp_path / "proof.jsonl"
    done = invoke("prove", ledger, trade_id[:10], "--out", proof_file)
    assert done.exit_code == EXIT_OK, done.stderr
    proofs = [json.loads(line) for line in done.stdout.splitlines()]
    assert [p["height"] for p in proofs] == [1, 2]  # the same run appended twice
    assert {p["record_id"] for p in proofs} == {trade_id}

    pubkey = key.with_name("manager.key.pub")
    checked = invoke("verify-proof", proof_file, "--pubkey", pubkey)
    assert checked.exit_code == EXIT_OK, checked.stderr
    assert f"ok: record {trade_id} is in block 1" in checked.stdout

    forged = dict(proofs[0], record={**proofs[0]["record"], "energy_kwh": "1"})
    proof_file.write_text(json.dumps(forged) + "\n")
    failed = invoke("verify-proof", proof_file, "--pubkey", pubkey)
    assert failed.exit_code == EXIT_INTEGRITY
    assert "block 1: changed record" in one_line(failed.stderr)


def test_run_options_are_checked_before_clearing(tmp_path: Path, key: Path) -> None:
    check_ledger_options(None, None)
    check_ledger_options(f"sqlite:///{tmp_path / 'new.db'}", key)
    assert not (tmp_path / "new.db").exists()  # checking creates nothing
    for url, key_file, match in (
        # the ledger is reached before any work: one that cannot be is refused up front
        ("postgresql://user:secret@127.0.0.1:1/db", key, "cannot connect"),
        ("sqlite:///x.db", None, "go together"),
        (None, key, "go together"),
        ("mysql://user:secret@host/db", key, "unknown ledger URL scheme"),
        ("sqlite://x.db", key, "not a SQLite URL"),
        ("sqlite:///x.db", tmp_path / "absent.key", "cannot read"),
    ):
        with pytest.raises(LedgerError, match=match) as raised:
            check_ledger_options(url, key_file)
        assert "secret" not in str(raised.value)


def test_append_with_settlement_lines(
    tmp_path: Path, key: Path, result: p2pmarket.ClearingResult
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    lines = pd.DataFrame({"peer": ["P2", "P3"], "bill": [6.72, -3.1], "energy_kwh": [140.0, 0.0]})
    block = append_run(url, key, result, lines)
    assert block.header.record_count == len(result.trades) + 2
    shown = invoke("show", url, "--height", "1")
    assert '"bill":"-3.1","energy_kwh":"0","kind":"settlement","peer":"P3"' in shown.stdout
    assert invoke("verify", url).exit_code == EXIT_OK
