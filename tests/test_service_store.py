"""The market service's store on both databases (issue 13): SQLite by default, PostgreSQL by
URL, through the same `ServiceStore` and the same versioned migrations.

Every test taking `store_url` runs on a fresh SQLite file and on a fresh schema of the
PostgreSQL server at P2PMARKET_TEST_POSTGRES_URL (`ledger_support.fresh_ledger_url`, the
ledger tests' fixture): skipped when it is unset, failed when P2PMARKET_REQUIRE_POSTGRES=1.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import p2pmarket.service.store as store_module
from ledger_support import POSTGRES_ENV, STORES, fresh_ledger_url, sql
from p2pmarket.service.store import (
    MIGRATIONS,
    EventRow,
    MarketRow,
    OrderRow,
    ResultRow,
    ServiceStore,
    ServiceStoreError,
)


def _require_postgres() -> None:
    if not os.environ.get(POSTGRES_ENV) and os.environ.get("P2PMARKET_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"P2PMARKET_REQUIRE_POSTGRES=1 but {POSTGRES_ENV} is not set")


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a new, empty database on each backend."""
    if request.param == "postgresql":
        _require_postgres()
    with fresh_ledger_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty PostgreSQL schema."""
    _require_postgres()
    with fresh_ledger_url("postgresql", tmp_path) as url:
        yield url


@pytest.fixture
def both_urls(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A new SQLite database and a new PostgreSQL schema, for one test to compare."""
    _require_postgres()
    with (
        fresh_ledger_url("sqlite", tmp_path) as sqlite_url,
        fresh_ledger_url("postgresql", tmp_path) as postgres_url,
    ):
        yield sqlite_url, postgres_url


# ---- the same operations, the same answers ---------------------------------------------------

# Ids and members whose order by code point (SQLite's, and PostgreSQL's `COLLATE "C"`) is not
# a natural language's: capitals before small letters, punctuation between, non-ASCII last.
MARKETS = [
    MarketRow("m-a", '{"t": 1}', '["P2", "p1"]', "2026-05-04T12:00:00+00:00", "t0"),
    MarketRow("m-B", '{"t": 2}', '["P2"]', "2026-05-04T12:00:00+00:00", "t1"),
    MarketRow("mÄ", '{"t": 3}', '["P2"]', "2026-05-04T11:00:00+00:00", "t2"),
    MarketRow("m_a", '{"t": 4}', '["P2"]', "2026-05-04T12:00:00+00:00", "t3"),
]


def script(store: ServiceStore) -> dict[str, Any]:
    """Every method of the store, called with the same arguments; what each answered."""
    out: dict[str, Any] = {}
    out["created"] = [store.create_market(m) for m in MARKETS]
    out["created again"] = store.create_market(MarketRow("m-a", "{}", "[]", "x", "y"))
    out["markets"] = store.markets()
    out["market"] = store.market("m-a")
    out["no market"] = store.market("nope")
    out["versions"] = [
        store.add_order("m-a", member, f'{{"v": {i}}}', f"o{i}")
        for i, member in enumerate(["P2", "P2", "p1", "P2", "Ω", "p1"])
    ]
    out["other market's version"] = store.add_order("m-B", "P2", "{}", "o9")
    out["history"] = store.order_history("m-a", "P2")
    out["no history"] = store.order_history("m-a", "P9")
    out["latest"] = store.latest_orders("m-a")
    out["latest elsewhere"] = store.latest_orders("mÄ")
    out["saved"] = store.save_result("m-a", '{"prices": [0.05]}', "c0")
    out["saved again"] = store.save_result("m-a", "{}", "c1", 7)
    out["saved with a block"] = store.save_result("m-B", "{}", "c2", 2**40)
    out["results"] = [store.result(m) for m in ("m-a", "m-B", "mÄ")]
    out["readings saved"] = [
        store.save_readings("m-a", "p1", "[1]", "r0"),
        store.save_readings("m-a", "P2", "[2]", "r1"),
        store.save_readings("m-a", "p1", "[3]", "r2"),
    ]
    out["readings"] = store.readings("m-a")
    out["no readings"] = store.readings("m-B")
    out["event ids"] = [
        store.add_event(market, kind, f'{{"n": {i}}}', f"e{i}")
        for i, (market, kind) in enumerate(
            [("m-a", "order"), ("m-B", "gate-closed"), ("m-a", "cleared"), ("mÄ", "order")]
        )
    ]
    out["events"] = store.events()
    out["events after"] = store.events(after=1, limit=2)
    out["no events"] = store.events(after=4)
    out["has"] = [store.has_event("m-a", "cleared"), store.has_event("m-B", "cleared")]
    out["version"] = store.schema_version
    out["snapshot"] = store.snapshot()
    return out


EXPECTED: dict[str, Any] = {
    "created": [True, True, True, True],
    "created again": False,
    "markets": [MARKETS[2], MARKETS[1], MARKETS[0], MARKETS[3]],
    "market": MARKETS[0],
    "no market": None,
    "versions": [1, 2, 1, 3, 1, 2],
    "other market's version": 1,
    "history": [
        OrderRow("P2", 1, "o0", '{"v": 0}'),
        OrderRow("P2", 2, "o1", '{"v": 1}'),
        OrderRow("P2", 3, "o3", '{"v": 3}'),
    ],
    "no history": [],
    "latest": {
        "P2": OrderRow("P2", 3, "o3", '{"v": 3}'),
        "p1": OrderRow("p1", 2, "o5", '{"v": 5}'),
        "Ω": OrderRow("Ω", 1, "o4", '{"v": 4}'),
    },
    "latest elsewhere": {},
    "saved": True,
    "saved again": False,
    "saved with a block": True,
    "results": [
        ResultRow("m-a", "c0", '{"prices": [0.05]}', None),
        ResultRow("m-B", "c2", "{}", 2**40),
        None,
    ],
    "readings saved": [True, True, False],
    "readings": {"P2": "[2]", "p1": "[1]"},
    "no readings": {},
    "event ids": [1, 2, 3, 4],
    "events": [
        EventRow(1, "m-a", "order", "e0", '{"n": 0}'),
        EventRow(2, "m-B", "gate-closed", "e1", '{"n": 1}'),
        EventRow(3, "m-a", "cleared", "e2", '{"n": 2}'),
        EventRow(4, "mÄ", "order", "e3", '{"n": 3}'),
    ],
    "events after": [
        EventRow(2, "m-B", "gate-closed", "e1", '{"n": 1}'),
        EventRow(3, "m-a", "cleared", "e2", '{"n": 2}'),
    ],
    "no events": [],
    "has": [True, False],
    "version": len(MIGRATIONS),
}


def test_every_method_answers_as_documented(store_url: str) -> None:
    out = script(ServiceStore(store_url))
    snapshot = out.pop("snapshot")
    assert out == EXPECTED
    assert list(out["latest"]) == ["P2", "p1", "Ω"]  # by member, by code point
    assert list(out["readings"]) == ["P2", "p1"]
    assert snapshot["markets"] == [tuple(vars(m).values()) for m in sorted(MARKETS, key=_id)]
    assert [row[:3] for row in snapshot["orders"]] == [
        ("m-B", "P2", 1),
        ("m-a", "P2", 1),
        ("m-a", "P2", 2),
        ("m-a", "P2", 3),
        ("m-a", "p1", 1),
        ("m-a", "p1", 2),
        ("m-a", "Ω", 1),
    ]
    assert snapshot["results"] == [
        ("m-B", "c2", "{}", 2**40),
        ("m-a", "c0", '{"prices": [0.05]}', None),
    ]
    assert snapshot["readings"] == [("m-a", "P2", "r1", "[2]"), ("m-a", "p1", "r0", "[1]")]
    assert [row[0] for row in snapshot["events"]] == [1, 2, 3, 4]


def _id(market: MarketRow) -> str:
    return market.id


def test_both_backends_answer_alike(both_urls: tuple[str, str]) -> None:
    sqlite_url, postgres_url = both_urls
    on_sqlite, on_postgres = script(ServiceStore(sqlite_url)), script(ServiceStore(postgres_url))
    assert on_sqlite == on_postgres
    assert on_sqlite["snapshot"] == on_postgres["snapshot"]


def test_an_order_for_no_market_is_refused_and_writes_nothing(store_url: str) -> None:
    store = ServiceStore(store_url)
    store.create_market(MARKETS[0])
    before = store.snapshot()
    for write in (
        lambda: store.add_order("nope", "P2", "{}", "o"),
        lambda: store.save_result("nope", "{}", "c"),
        lambda: store.save_readings("nope", "P2", "[]", "r"),
        lambda: store.add_event("nope", "order", "{}", "e"),
    ):
        with pytest.raises((sqlite3.IntegrityError, ServiceStoreError), match=r"(?i)foreign key"):
            write()
    assert store.snapshot() == before


# ---- migrations ------------------------------------------------------------------------------


def test_a_version_1_database_is_migrated_keeping_its_data(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(store_module, "MIGRATIONS", MIGRATIONS[:1])
        old = ServiceStore(store_url)
        assert old.schema_version == 1
        old.create_market(MARKETS[0])
        assert [old.add_order("m-a", "P2", "{}", f"o{i}") for i in range(3)] == [1, 2, 3]
        old.save_readings("m-a", "P2", "[1]", "r0")
    sql(store_url, "INSERT INTO results VALUES (?, ?, ?)", ("m-a", "c0", '{"old": true}'))
    assert sql(store_url, "SELECT * FROM results") == [("m-a", "c0", '{"old": true}')]

    store = ServiceStore(store_url)
    assert store.schema_version == len(MIGRATIONS) == 3
    assert store.markets() == [MARKETS[0]]
    assert [o.version for o in store.order_history("m-a", "P2")] == [1, 2, 3]
    assert store.add_order("m-a", "P2", "{}", "o3") == 4
    assert store.readings("m-a") == {"P2": "[1]"}
    assert store.result("m-a") == ResultRow("m-a", "c0", '{"old": true}', None)
    assert store.events() == []
    assert store.add_event("m-a", "order", "{}", "e0") == 1
    assert sql(store_url, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]


def test_a_newer_schema_is_refused(store_url: str) -> None:
    store = ServiceStore(store_url)
    store.create_market(MARKETS[0])
    sql(store_url, "UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    newer = f"schema version {len(MIGRATIONS) + 1} is newer"
    with pytest.raises(ServiceStoreError, match=newer) as refused:
        ServiceStore(store_url)
    assert store.url in str(refused.value) and "\n" not in str(refused.value)
    assert sql(store_url, "SELECT id FROM markets") == [("m-a",)]  # nothing was touched


def test_concurrent_openers_migrate_once(store_url: str) -> None:
    stores = _together(6, lambda _: ServiceStore(store_url))
    assert [s.schema_version for s in stores] == [len(MIGRATIONS)] * 6
    assert sql(store_url, "SELECT version FROM schema_version") == [(len(MIGRATIONS),)]
    stores[0].create_market(MARKETS[0])
    assert stores[-1].market("m-a") == MARKETS[0]


def test_concurrent_openers_of_new_sqlite_files_all_open(tmp_path: Path) -> None:
    """Six threads opening one new SQLite file at once race for its switch to WAL mode,
    and SQLite answers the losers "database is locked" without waiting (about 1 round in
    10): twenty rounds, each on a new file, all open."""
    for i in range(20):
        url = f"sqlite:///{tmp_path / f'ledger-{i}.db'}"
        stores = _together(6, lambda _, url=url: ServiceStore(url))
        assert [s.schema_version for s in stores] == [len(MIGRATIONS)] * 6


# ---- concurrent writers ----------------------------------------------------------------------


def _together(threads: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(0)`, ..., `work(threads - 1)`, each in a thread of its own, started at once; their
    results (an error in any is raised here)."""
    barrier = threading.Barrier(threads)
    results: list[Any] = [None] * threads
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_order_versions_stay_1_to_n_under_concurrent_writers(store_url: str) -> None:
    store = ServiceStore(store_url)
    store.create_market(MARKETS[0])
    n = 20
    versions = _together(
        2, lambda t: [store.add_order("m-a", "P2", f'{{"t": {t}}}', f"o{i}") for i in range(n)]
    )
    assert sorted(versions[0] + versions[1]) == list(range(1, 2 * n + 1))
    assert all(v == sorted(v) for v in versions)
    assert [o.version for o in store.order_history("m-a", "P2")] == list(range(1, 2 * n + 1))
    assert store.latest_orders("m-a")["P2"].version == 2 * n


def test_event_ids_increase_and_a_follower_misses_none(store_url: str) -> None:
    """Two writers add events while a reader follows with `events(after=last)`, as the event
    stream does: ids are unique and increase, and the follower sees every event (an id is
    never committed below one a reader has already seen)."""
    store = ServiceStore(store_url)
    store.create_market(MARKETS[0])
    n = 20
    done = threading.Event()
    seen: list[int] = []

    def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            for event in store.events(after=last):
                seen.append(event.id)
                last = event.id
            if finished:
                return

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        ids = _together(
            2, lambda t: [store.add_event("m-a", f"k{t}", "{}", f"e{i}") for i in range(n)]
        )
    finally:
        done.set()
        follower.join()
    assert all(i == sorted(i) for i in ids)
    assert sorted(ids[0] + ids[1]) == list(range(1, 2 * n + 1))
    assert seen == list(range(1, 2 * n + 1))
    assert [e.id for e in store.events()] == seen


# ---- opening -------------------------------------------------------------------------------


def test_a_path_and_sqlite_urls_name_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ServiceStore(tmp_path / "s.db").create_market(MARKETS[0])
    for target in (
        tmp_path / "s.db",
        str(tmp_path / "s.db"),
        "s.db",
        f"sqlite:///{tmp_path / 's.db'}",
        "sqlite:///s.db",
    ):
        store = ServiceStore(target)
        assert store.markets() == [MARKETS[0]], target
        assert store.path is not None and store.path.resolve() == tmp_path / "s.db"
    assert ServiceStore("sqlite:///s.db").url == "sqlite:///s.db"
    assert ServiceStore(tmp_path / "s.db").url == f"sqlite:///{tmp_path / 's.db'}"


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://s.db", "http://h/s.db"])
def test_an_unknown_url_is_refused(url: str) -> None:
    with pytest.raises(ServiceStoreError) as refused:
        ServiceStore(url)
    assert "\n" not in str(refused.value)


def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    url = "postgresql://someone:s3cret@127.0.0.1:1/market?connect_timeout=5"
    with pytest.raises(ServiceStoreError) as refused:
        ServiceStore(url)
    message = str(refused.value)
    assert message.startswith("cannot connect to postgresql://someone:***@127.0.0.1:1/market")
    assert "s3cret" not in message and "\n" not in message


def test_the_url_has_no_password(postgres_url: str) -> None:
    base, _, query = postgres_url.partition("?")
    user, _, host = base.removeprefix("postgresql://").partition("@")
    store = ServiceStore(f"postgresql://{user}:not-needed@{host}?{query}")  # trust auth
    assert store.url == f"postgresql://{user}:***@{host}?{query}"
    assert "not-needed" not in repr(store)


def test_postgresql_text_sorts_by_code_point(postgres_url: str) -> None:
    """Whatever the database's own collation, the store's text columns are `COLLATE "C"`,
    so orderings (markets, members) are SQLite's."""
    ServiceStore(postgres_url)
    collations = sql(
        postgres_url,
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = current_schema() AND data_type = 'text'",
    )
    assert len(collations) == 5 + 4 + 3 + 4 + 4 + 2  # markets orders results readings events nonces
    assert {c for _, _, c in collations} == {"C"}


# ---- nonces ------------------------------------------------------------------------------


def test_a_nonce_is_remembered_until_its_time_by_every_opener(store_url: str) -> None:
    first, second = ServiceStore(store_url), ServiceStore(store_url)  # two processes' stores
    assert first.remember("P2", "n1", until=1_000.0, now=700.0) is True
    assert second.remember("P2", "n1", until=1_000.0, now=999.0) is False  # a replay
    assert second.remember("P3", "n1", until=1_000.0, now=999.0) is True  # another key's
    assert first.remember("P2", "n1", until=1_400.0, now=1_001.0) is True  # past its time
    assert sql(store_url, "SELECT key_id, nonce FROM nonces ORDER BY key_id") == [
        ("P2", "n1")
    ]  # P3's expired nonce was forgotten on the way
    assert "nonces" not in first.snapshot()


def test_concurrent_requests_with_one_nonce_are_accepted_once(store_url: str) -> None:
    store = ServiceStore(store_url)
    accepted = _together(4, lambda _: store.remember("P2", "same", until=2_000.0, now=1_000.0))
    assert sorted(accepted) == [False, False, False, True]


def test_the_members_ordered_and_read_are_listed_without_their_bodies(store_url: str) -> None:
    store = ServiceStore(store_url)
    store.create_market(MARKETS[0])
    for member in ("P3", "P10", "P3"):
        store.add_order("m-a", member, "{}", "o")
    store.save_readings("m-a", "P10", "[1]", "r")
    assert store.ordered_members("m-a") == sorted(store.latest_orders("m-a")) == ["P10", "P3"]
    assert store.readings_members("m-a") == sorted(store.readings("m-a")) == ["P10"]
