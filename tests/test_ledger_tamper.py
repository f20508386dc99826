"""The tamper suite (issue 12): every edit of every table and column of both stores is either
caught or inert, and never a traceback.

Hypothesis draws a table, a row, a column and a mutation (set NULL, another type, a flipped
bit, an edited digit, swapped rows, a deleted row) or a truncation (the last blocks deleted,
with or without their records and the head), applied by SQL to a copy of a small ledger the
way an attacker with write access to the database would: the mutated table is first rebuilt
without its constraints (SQLite: CREATE TABLE AS; PostgreSQL: constraints and NOT NULL
dropped), so that no edit is out of reach. Then, through the command line (`p2pmarket ledger
verify`, `show`, `show --height N`, `export`, `prove`):

- every command ends with exit code 0, or with 1 or 2 and exactly one line on stderr, and
  never raises anything but its exit;
- `verify` passes exactly when the values it reads are the values of the untouched ledger
  (the mutation was inert: an equal value swapped, a type PostgreSQL reads back the same);
- an append onto a ledger that does not verify is refused, or leaves a ledger that still does
  not verify (nothing is laundered); a truncated ledger is always refused, also by the check
  `run --ledger` makes before clearing.

Beside the property: a re-signed chain fails `verify` by default, and a rollback to an earlier
copy (blocks and head) is reported against a head kept elsewhere. PostgreSQL cases run when
P2PMARKET_TEST_POSTGRES_URL is set, and fail rather than skip when
P2PMARKET_REQUIRE_POSTGRES=1. `benchmarks/ledger_tamper.py` runs the property on 1,000
ledgers and prints the counts.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ledger_support import POSTGRES_ENV, STORES, Clock, records, sql, worker_database
from p2pmarket.errors import LedgerError, LedgerIntegrityError
from p2pmarket.ledger import (
    BlockHeader,
    Record,
    SignedHead,
    append_records,
    generate_keypair,
    load_private_key,
    load_public_key,
    open_store,
    signed_head,
    verify,
)
from p2pmarket.ledger.blocks import GENESIS_PREVIOUS_HASH, head_bytes, make_block
from p2pmarket.ledger.keys import sign
from p2pmarket.ledger.runs import check_signing_key
from p2pmarket.ledger.store import sqlite_path

BLOCKS, RECORDS = 3, 3
"""The template ledger: the genesis block, then blocks 1-3 of 3 records each."""

COLUMNS = {
    "ledger_blocks": ("height", "block_hash", "header", "signature"),
    "ledger_records": ("height", "position", "record_id", "body"),
    "ledger_head": ("id", "height", "block_hash", "signature"),
}
INTEGERS = {"height", "position", "id"}
MUTATIONS = ("null", "type", "bit", "digit", "swap", "delete")
EXAMPLES = int(os.environ.get("P2PMARKET_TAMPER_EXAMPLES", "40"))


def postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if url:
        return worker_database(url)  # under pytest-xdist, this worker's own database
    if os.environ.get("P2PMARKET_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"P2PMARKET_REQUIRE_POSTGRES=1 but {POSTGRES_ENV} is not set")
    pytest.skip(f"{POSTGRES_ENV} is not set (source .ci/postgres.sh to start a server)")


# ---- ledgers to tamper with -----------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """An untouched ledger to copy, what verify reads from it, and its key."""

    kind: str
    url: str
    key: Path
    pubkey: Path
    reads: Any
    record_prefix: str


def reads(url: str) -> Any:
    """Everything `verify` reads (head, blocks, records), or None if a value is unreadable."""
    try:
        with open_store(url) as store:
            return store.head(), tuple(store.blocks())
    except LedgerError:
        return None


def build_template(kind: str, where: Path) -> Template:
    key, pubkey = generate_keypair(where / "manager.key")
    if kind == "sqlite":
        url = f"sqlite:///{where / 'template' / 'ledger.db'}"
    else:
        url = _new_schema(postgres_url())
    clock = Clock()
    for b in range(1, BLOCKS + 1):
        append_records(url, key, records(b, RECORDS), scenario_hash=None, run=None, clock=clock)
    with open_store(url) as store:
        block = store.block(2)
        assert block is not None
        prefix = block.records[1].record_id[:12]
    return Template(kind, url, key, pubkey, reads(url), prefix)


def _new_schema(base: str) -> str:
    import psycopg

    schema = f"ledger_tamper_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options={quote(f'-csearch_path={schema}')}"


def _schema(url: str) -> str:
    return url.rsplit("search_path%3D", 1)[1]


def _drop_schema(url: str) -> None:
    import psycopg

    base = url.rsplit("?options=", 1)[0].rsplit("&options=", 1)[0]
    with psycopg.connect(base, autocommit=True) as db:
        db.execute(f"DROP SCHEMA IF EXISTS {_schema(url)} CASCADE")


@contextmanager
def copy_of(template: Template) -> Iterator[str]:
    """A fresh copy of the template ledger (with its pinned key, on SQLite)."""
    if template.kind == "sqlite":
        source = Path(sqlite_path(template.url))
        folder = Path(tempfile.mkdtemp(prefix="tamper-"))
        try:
            shutil.copy(source, folder / "ledger.db")
            shutil.copy(source.with_name("ledger.db.pub"), folder / "ledger.db.pub")
            yield f"sqlite:///{folder / 'ledger.db'}"
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    import psycopg

    url = _new_schema(postgres_url())
    schema, source = _schema(url), _schema(template.url)
    try:
        with psycopg.connect(postgres_url(), autocommit=True) as db:
            for table in COLUMNS:
                db.execute(f"CREATE TABLE {schema}.{table} (LIKE {source}.{table} INCLUDING ALL)")
                db.execute(f"INSERT INTO {schema}.{table} SELECT * FROM {source}.{table}")
        yield url
    finally:
        _drop_schema(url)


@pytest.fixture(scope="module", params=STORES)
def template(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    made = build_template(request.param, tmp_path_factory.mktemp(f"tamper-{request.param}"))
    yield made
    if made.kind != "sqlite":
        _drop_schema(made.url)


# ---- mutations ------------------------------------------------------------------------------


def unlock(url: str, table: str) -> list[int]:
    """Rebuild `table` without its constraints, with a `tamper_row` column that names each
    row (invisible to the ledger, which reads its columns by name); the rows' numbers."""
    if url.startswith("sqlite:"):
        db = sqlite3.connect(sqlite_path(url), isolation_level=None)
        try:
            db.execute(f"CREATE TABLE unlocked AS SELECT rowid AS tamper_row, * FROM {table}")
            db.execute(f"DROP TABLE {table}")
            db.execute(f"ALTER TABLE unlocked RENAME TO {table}")
        finally:
            db.close()
    else:
        names = sql(url, f"SELECT conname FROM pg_constraint WHERE conrelid = '{table}'::regclass")
        for (name,) in names:
            sql(url, f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        for column in COLUMNS[table]:
            sql(url, f"ALTER TABLE {table} ALTER COLUMN {column} DROP NOT NULL")
        sql(url, f"ALTER TABLE {table} ADD COLUMN tamper_row BIGSERIAL")
    return [int(r) for (r,) in sql(url, f"SELECT tamper_row FROM {table} ORDER BY tamper_row")]


def _flip(value: Any, data: st.DataObject) -> Any:
    bit = data.draw(st.integers(0, 6), label="bit")
    if isinstance(value, int):
        return value ^ (1 << bit)
    text = str(value)
    i = data.draw(st.integers(0, len(text) - 1), label="character")
    code = ord(text[i])
    flipped = code ^ (1 << bit) if code < 128 else code ^ 1
    if flipped == 0:  # PostgreSQL text holds no NUL
        flipped = code ^ (1 << ((bit + 1) % 7))
    return text[:i] + chr(flipped) + text[i + 1 :]


def _edit_digit(value: Any, data: st.DataObject) -> Any:
    text = str(value)
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    if not digits:
        return _flip(value, data)
    i = data.draw(st.sampled_from(digits), label="digit")
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != text[i]]), label="to")
    edited = text[:i] + new + text[i + 1 :]
    return int(edited) if isinstance(value, int) else edited


def _other_type(url: str, table: str, column: str, row: int, data: st.DataObject) -> str:
    integer = column in INTEGERS
    if url.startswith("sqlite:"):
        literal = data.draw(
            st.sampled_from(["'x'", "1.5", "X'01'", "'3'"] if integer else ["7", "1.5", "blob"]),
            label="value",
        )
        if literal == "blob":
            literal = f"CAST({column} AS BLOB)"
        sql(url, f"UPDATE {table} SET {column} = {literal} WHERE tamper_row = ?", (row,))
        return f"{column} := {literal}"
    casts = (
        ["text USING {c}::text", "numeric USING {c}::numeric", "float8 USING {c}::float8"]
        if integer
        else [
            "bytea USING convert_to({c}, 'UTF8')",
            "jsonb USING to_jsonb({c})",
            "int USING length({c})",
        ]
    )
    cast = data.draw(st.sampled_from(casts), label="type").format(c=column)
    sql(url, f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {cast}")
    return f"{column} TYPE {cast}"


def mutate(url: str, data: st.DataObject) -> tuple[str, bool]:
    """Apply one drawn mutation to the ledger at `url`; what it was, and whether it was a
    truncation."""
    if data.draw(st.integers(0, 7), label="truncate?") == 0:
        cut = data.draw(st.integers(1, BLOCKS), label="blocks cut")
        with_records = data.draw(st.booleans(), label="their records too")
        with_head = data.draw(st.booleans(), label="the head too")
        sql(url, "DELETE FROM ledger_blocks WHERE height > ?", (BLOCKS - cut,))
        if with_records:
            sql(url, "DELETE FROM ledger_records WHERE height > ?", (BLOCKS - cut,))
        if with_head:
            sql(url, "DELETE FROM ledger_head")
        return f"truncated {cut} (records {with_records}, head {with_head})", True
    table = data.draw(st.sampled_from(sorted(COLUMNS)), label="table")
    column = data.draw(st.sampled_from(COLUMNS[table]), label="column")
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    rows = unlock(url, table)
    row = data.draw(st.sampled_from(rows), label="row")
    where = "WHERE tamper_row = ?"
    (value,) = sql(url, f"SELECT {column} FROM {table} {where}", (row,))[0]
    if mutation == "null":
        sql(url, f"UPDATE {table} SET {column} = NULL {where}", (row,))
    elif mutation == "type":
        mutation = _other_type(url, table, column, row, data)
    elif mutation in ("bit", "digit"):
        new = _flip(value, data) if mutation == "bit" else _edit_digit(value, data)
        sql(url, f"UPDATE {table} SET {column} = ? {where}", (new, row))
        mutation += f" {value!r:.30} -> {new!r:.30}"
    elif mutation == "swap":
        other = data.draw(st.sampled_from(rows), label="other row")
        (other_value,) = sql(url, f"SELECT {column} FROM {table} {where}", (other,))[0]
        sql(url, f"UPDATE {table} SET {column} = ? {where}", (other_value, row))
        sql(url, f"UPDATE {table} SET {column} = ? {where}", (value, other))
        mutation += f" with row {other}"
    else:
        sql(url, f"DELETE FROM {table} {where}", (row,))
    return f"{table}.{column} row {row}: {mutation}", False


# ---- the checks -----------------------------------------------------------------------------


def cli(*args: str | Path) -> tuple[int, str, str]:
    """Run `p2pmarket ARGS`: exit code, stdout, stderr; anything but an exit is a failure."""
    from p2pmarket.cli.main import app

    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"p2pmarket {args[:2]} raised {result.exception!r}") from (
            result.exception
        )
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    if result.exit_code != 0:
        assert result.exit_code in (1, 2), (args, result.exit_code, output)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result.stderr)
    return result.exit_code, result.stdout, result.stderr


def key_options(template: Template) -> list[str | Path]:
    """`--pubkey` for PostgreSQL, which pins no key; nothing for SQLite (its pinned key)."""
    return [] if template.kind == "sqlite" else ["--pubkey", template.pubkey]


def check_tampered(template: Template, url: str, truncated: bool, tally: Counter[str]) -> None:
    code, _, stderr = cli("ledger", "verify", url, *key_options(template))
    unchanged = reads(url) == template.reads
    if unchanged:
        assert code == 0, f"an inert edit fails verify: {stderr}"
        tally["inert"] += 1
    else:
        assert code in (1, 2), "a changed ledger verifies"
        tally["caught"] += 1
    folder = Path(tempfile.mkdtemp(prefix="tamper-out-"))
    try:
        cli("ledger", "show", url)
        for height in range(BLOCKS + 2):
            cli("ledger", "show", url, "--height", str(height))
        cli("ledger", "export", url, "--out", folder / "ledger.jsonl", "--force")
        cli("ledger", "prove", url, template.record_prefix)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if unchanged:
        return
    if truncated:
        with pytest.raises(LedgerError):
            check_signing_key(url, template.key)
    try:
        append_records(url, template.key, records(9, 2), scenario_hash=None, run=None)
    except LedgerError:
        tally["append refused"] += 1
        return
    assert not truncated, "an append built on a truncated ledger"
    again, _, _ = cli("ledger", "verify", url, *key_options(template))
    if again == 0:
        tally["laundered"] += 1
    assert again != 0, "an append laundered a tampered ledger"
    tally["append kept the failure"] += 1


def run_tamper_property(template: Template, examples: int, tally: Counter[str]) -> None:
    """The property on `examples` tampered copies of `template` (hypothesis)."""

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def tampered(data: st.DataObject) -> None:
        with copy_of(template) as url:
            what, truncated = mutate(url, data)
            data.draw(st.just(what), label="mutation applied")
            check_tampered(template, url, truncated, tally)
        tally["ledgers"] += 1

    tampered()


def test_every_mutation_is_caught_or_inert_and_never_a_traceback(template: Template) -> None:
    tally: Counter[str] = Counter()
    run_tamper_property(template, EXAMPLES, tally)
    print(f"\n{template.kind}: {dict(tally)}")
    assert tally["laundered"] == 0


# ---- truncation, re-signing, rollback -------------------------------------------------------


@pytest.mark.parametrize("with_head", [False, True])
def test_a_truncated_ledger_refuses_run_ledger(
    template: Template, with_head: bool, tmp_path: Path
) -> None:
    """The issue's path: delete the last block (and the head), then `run --ledger` as usual:
    refused before clearing, with one line, and the ledger still does not verify."""
    with copy_of(template) as url:
        sql(url, "DELETE FROM ledger_blocks WHERE height = ?", (BLOCKS,))
        if with_head:
            sql(url, "DELETE FROM ledger_head")
        code, _, stderr = cli("run", "five-peer-case-2", "--ledger", url, "--key", template.key)
        assert code == 1 and "truncated chain" in stderr and "refusing to append" in stderr
        assert cli("ledger", "verify", url, *key_options(template))[0] == 1
        with pytest.raises(LedgerIntegrityError, match="truncated chain"):
            append_records(url, template.key, records(9, 1), scenario_hash=None, run=None)


def test_an_emptied_sqlite_ledger_is_not_started_again(tmp_path: Path) -> None:
    key = generate_keypair(tmp_path / "k")[0]
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    append_records(url, key, records(1, 2), scenario_hash=None, run=None)
    for table in COLUMNS:
        sql(url, f"DELETE FROM {table}")
    with pytest.raises(LedgerIntegrityError, match="its blocks were removed"):
        append_records(url, key, records(2, 2), scenario_hash=None, run=None)
    Path(sqlite_path(url)).unlink()
    with pytest.raises(LedgerIntegrityError, match="its blocks were removed"):
        check_signing_key(url, key)


def resign(url: str, key: Path) -> None:
    """Rewrite every block and the head with `key`: the same chain, by another key."""
    signer = load_private_key(key)
    with open_store(url) as store:
        stored = list(store.blocks())
    previous = GENESIS_PREVIOUS_HASH
    for block in stored:
        header = BlockHeader.parse(block.header)
        forged = make_block(
            signer,
            height=header.height,
            previous_hash=previous,
            timestamp=datetime.fromisoformat(header.timestamp),
            records=[Record(r.record_id, r.body) for r in block.records],
            scenario_hash=header.scenario_hash,
            run=header.run,
        )
        sql(
            url,
            "UPDATE ledger_blocks SET header = ?, signature = ?, block_hash = ? WHERE height = ?",
            (forged.header.canonical().decode(), forged.signature, forged.block_hash, block.height),
        )
        previous = forged.block_hash
    signature = sign(signer, head_bytes(len(stored) - 1, previous))
    sql(url, "UPDATE ledger_head SET block_hash = ?, signature = ?", (previous, signature))


def test_a_resigned_chain_fails_verify_by_default(template: Template, tmp_path: Path) -> None:
    intruder = generate_keypair(tmp_path / "intruder.key")
    accepted = 0
    with copy_of(template) as url:
        resign(url, intruder[0])
        with open_store(url) as store:  # it checks out against its own genesis block
            assert verify(store, load_public_key(intruder[1])).ok
        if template.kind == "sqlite":
            code, _, stderr = cli("ledger", "verify", url)  # no flags: the pinned key
            assert code == 1 and "block 0: wrong key" in stderr, stderr
        else:
            code, _, stderr = cli("ledger", "verify", url)  # no pin: the key must be given
            assert code == 2 and "--pubkey" in stderr, stderr
            code, _, stderr = cli("ledger", "verify", url, "--pubkey", template.pubkey)
            assert code == 1 and "block 0: wrong key" in stderr, stderr
        accepted += code == 0
        with pytest.raises(LedgerError):
            check_signing_key(url, template.key)
    print(f"\n{template.kind}: re-signed chains accepted by default: {accepted}")
    assert accepted == 0


def test_a_rollback_is_reported_against_a_kept_head(template: Template, tmp_path: Path) -> None:
    """A whole earlier copy (blocks and head as they were) verifies on its own; against the
    head a member kept (`ledger head --out`) it is a rollback."""
    with copy_of(template) as url:
        with open_store(url) as store:
            old_head = store.head()
        assert old_head is not None
        append_records(url, template.key, records(7, 2), scenario_hash=None, run=None)
        kept = tmp_path / "head.json"
        code, stdout, _ = cli("ledger", "head", url, *key_options(template), "--out", kept)
        assert code == 0 and json.loads(kept.read_text())["height"] == BLOCKS + 1
        assert json.loads(stdout) == json.loads(kept.read_text())
        assert cli("ledger", "verify", url, "--head", kept)[0] == 0
        # Roll back: the new block goes, the head as it was comes back (a valid old ledger).
        sql(url, "DELETE FROM ledger_blocks WHERE height = ?", (BLOCKS + 1,))
        sql(url, "DELETE FROM ledger_records WHERE height = ?", (BLOCKS + 1,))
        sql(
            url,
            "UPDATE ledger_head SET height = ?, block_hash = ?, signature = ?",
            (old_head.height, old_head.block_hash, old_head.signature),
        )
        assert cli("ledger", "verify", url, *key_options(template))[0] == 0
        code, _, stderr = cli("ledger", "verify", url, "--head", kept)
        assert code == 1, stderr
        assert (
            f"block {BLOCKS + 1}: rolled back: the ledger ends at block {BLOCKS}, "
            f"the published head is at block {BLOCKS + 1}"
        ) in stderr
        head = SignedHead.from_dict(json.loads(kept.read_text()))
        report = verify(url, None, head=head)
        assert report.failure is not None and report.failure.reason == "rolled back"
        with open_store(url) as store:
            assert signed_head(store, load_public_key(template.pubkey)).height == BLOCKS


@pytest.mark.parametrize(
    "content",
    [
        "",
        "5",
        "[1, 2]",
        "not json",
        '{"kind": "head"}',
        "\ufffe\xff",
    ],
)
def test_malformed_head_files_are_bad_input(
    template: Template, tmp_path: Path, content: str
) -> None:
    head = tmp_path / "head.json"
    head.write_text(content, encoding="utf-8", errors="surrogateescape")
    code, _, _ = cli("ledger", "verify", template.url, "--head", head)
    assert code == 2


def test_malformed_proof_files_are_verdicts(template: Template, tmp_path: Path) -> None:
    proof_file = tmp_path / "proof.jsonl"
    assert cli("ledger", "prove", template.url, template.record_prefix, "--out", proof_file)[0] == 0
    proof = json.loads(proof_file.read_text().splitlines()[0])
    step = proof["path"][0]
    variants: list[Any] = [
        5,
        "text",
        [proof],
        {**proof, "path": [{**step, "hash": "zz" * 32}]},  # non-hex
        {**proof, "path": [{**step, "hash": step["hash"][:-1]}]},  # odd length
        {**proof, "path": [{**step, "hash": 5}]},  # a number
        {**proof, "path": 5},
        {**proof, "path": [5]},
        {**proof, "height": "2"},
        {**proof, "height": 1.5},
        {**proof, "position": None},
        {**proof, "signature": "ab"},
        {**proof, "record_id": proof["record_id"].upper()},
        {**proof, "header": 5},
        {**proof, "header": {**proof["header"], "height": "x"}},
        {**proof, "height": proof["height"] + 1},
        {**proof, "record": {**proof["record"], "energy_kwh": "1"}},
        {k: v for k, v in proof.items() if k != "path"},
    ]
    for variant in variants:
        proof_file.write_text(json.dumps(variant) + "\n")
        code, _, _ = cli("ledger", "verify-proof", proof_file, "--pubkey", template.pubkey)
        assert code in (1, 2), variant
    proof_file.write_bytes(b"\xff\xfe\x00")
    assert cli("ledger", "verify-proof", proof_file, "--pubkey", template.pubkey)[0] == 2
