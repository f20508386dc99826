"""Fuzzing the scenario readers (issue 12, item 4; docs/scenario-limits.md).

Of 300 mutated scenario files, `validate` once crashed on 17, hung on 7 (a 1,000,000-character
name, YAML alias bombs) and exhausted memory on 4. Here hypothesis mutates the built-in
cases' files (src/p2pmarket/cases/data): keys inserted, values replaced by huge texts, odd
unicode, huge or non-finite numbers, deep nesting, CSV references out of the directory; the
text then by alias bombs, anchors, tags, BOMs, invalid UTF-8 bytes, truncation, a second
document, numbers of thousands of digits; the CSV file too. Each input is read by
`load_scenario` (and, as text, by `parse_scenario`) in a worker process capped at 2 GB of
address space, with a wall-clock bound per input: it must be accepted or refused with one
line (a p2pmarket `InputError`), never another exception, a hang or a `MemoryError`.

The run prints "0 tracebacks, 0 hangs, 0 memory exhaustions on N mutated scenarios": N is
ten times the hypothesis profile's examples (1,000 under HYPOTHESIS_PROFILE=ci, 50 under
quick). The worker is this file run as a script (`python tests/test_scenario_fuzz.py`).
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

MEMORY_CAP = 2 * 1024**3  # bytes of address space of the worker
TIME_BOUND_S = 20.0  # wall-clock bound per input (the slowest accepted input takes < 2 s)
DATA = Path(__file__).resolve().parents[1] / "src" / "p2pmarket" / "cases" / "data"
CSV_NAME = "seventeen-peer-case-3.csv"


# --- the worker: reads one input per request, under the memory cap ---------------------------


def _worker() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    from p2pmarket.errors import InputError
    from p2pmarket.io.scenario_files import load_scenario, parse_scenario

    def timeout(signum: int, frame: Any) -> None:
        raise TimeoutError

    signal.signal(signal.SIGALRM, timeout)
    for request in sys.stdin:
        path, as_text = json.loads(request)
        start = time.perf_counter()
        signal.setitimer(signal.ITIMER_REAL, TIME_BOUND_S)
        try:
            load_scenario(path)
            if as_text:
                file = Path(path)
                parse_scenario(file.read_bytes(), format=file.suffix[1:])  # type: ignore[arg-type]
            answer = {"outcome": "accepted"}
        except InputError as exc:
            message = str(exc)
            one_line = "\n" not in message and "\r" not in message and len(message) <= 1000
            answer = {"outcome": "refused" if one_line else "long", "detail": message[:300]}
        except TimeoutError:
            answer = {"outcome": "hang"}
        except MemoryError:
            answer = {"outcome": "memory"}
        except BaseException as exc:  # what the fuzz is looking for
            answer = {"outcome": "traceback", "detail": f"{type(exc).__name__}: {exc}"[:300]}
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        answer["seconds"] = time.perf_counter() - start
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _worker()
    sys.exit(0)


# --- the test side ------------------------------------------------------------------------------

import pytest  # noqa: E402
import yaml  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CASES = {p.name: p.read_text(encoding="utf-8") for p in sorted(DATA.glob("*.yaml"))}
CSV_TEXT = (DATA / CSV_NAME).read_bytes()
EXAMPLES = 10 * settings().max_examples


class Worker:
    """The worker process; restarted after a hang or a crash."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> subprocess.Popen[str]:
        if self.process is None or self.process.poll() is not None:
            env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
            env = {k: v for k, v in env.items() if not k.startswith("P2PMARKET_MAX")}
            self.process = subprocess.Popen(
                [sys.executable, __file__],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
        return self.process

    def read(self, path: Path, as_text: bool) -> dict[str, Any]:
        process = self.start()
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps([str(path), as_text]) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], TIME_BOUND_S * 2 + 30)
        line = process.stdout.readline() if ready else ""
        if line:
            answer: dict[str, Any] = json.loads(line)
            return answer
        outcome = "hang" if process.poll() is None else "crash"
        code = process.poll()
        self.stop()
        return {"outcome": outcome, "detail": f"worker exit code {code}"}

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# Values a mutation puts into the scenario. `RAW...RAW` stands for text no dumper writes (a
# number of thousands of digits, nesting thousands deep); it is put in after dumping.
RAW: dict[str, str] = {}


def raw(text: str) -> str:
    token = f"RAW{len(RAW)}RAW"
    RAW[token] = text
    return token


HUGE_INTS = [raw("9" * n) for n in (19, 20, 300, 4300, 4301, 5000, 100_000)]
DEEP = [raw("[" * d + "]" * d) for d in (19, 20, 21, 100, 1000, 20_000)]
DEEP += [raw('{"a": ' * d + "1" + "}" * d) for d in (21, 999, 5000)]

huge_text = st.builds(
    lambda n, c: c * n,
    st.sampled_from([199, 200, 201, 10_000, 10_001, 100_000, 1_000_000]),
    st.sampled_from(["a", "é", "\u202e", "\x00", "\n", "\U0001f642", "\x1b[2J", "\t"]),
)
odd_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
numbers = st.one_of(
    st.sampled_from(
        [0, -1, 1e18, 1e308, -1e308, 5e-324, -0.0, 10**18, 2**63, 2**64, 10**30, True, None]
    ),
    st.sampled_from([float("inf"), float("-inf"), float("nan")]),
    st.integers(),
    st.floats(),
)
csv_refs = st.fixed_dictionaries(
    {
        "csv": st.sampled_from(
            [
                CSV_NAME,
                "../" + CSV_NAME,
                "/proc/self/environ",
                "/etc/passwd",
                "nowhere.csv",
                "a" * 300,
                "\x00",
                "/dev/zero",
                ".",
                "sub/../" + CSV_NAME,
                "~/x.csv",
            ]
        ),
        "column": st.sampled_from(["P2_load_kw", "hour", "nope", "", "\x00" * 3, "x" * 201]),
    }
)
values = st.one_of(
    huge_text,
    odd_text,
    numbers,
    st.sampled_from(HUGE_INTS + DEEP),
    csv_refs,
    st.lists(st.floats(0, 100), min_size=23, max_size=25),
    st.lists(st.one_of(numbers, odd_text), max_size=4),
    st.dictionaries(odd_text, numbers, max_size=3),
)
keys = st.one_of(
    st.sampled_from(["period", "periods", "peers", "id", "csv", "column", "<<", "name", "from"]),
    odd_text,
    st.builds(lambda n: "k" * n, st.sampled_from([201, 100_000, 1_000_000])),
    st.integers(),
)


def places(data: Any) -> list[tuple[Any, Any]]:
    """Every (container, key) of the data: where a value may be replaced."""
    found: list[tuple[Any, Any]] = []
    stack = [data]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            found.append((node, key))
            if isinstance(value, dict | list):
                stack.append(value)
    return found


def alias_bomb(levels: int) -> bytes:
    lines = ["\nbomb0: &b0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"bomb{i}: &b{i} [{', '.join([f'*b{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\n").encode()


def insert(at: int, what: bytes) -> Callable[[bytes], bytes]:
    return lambda b: b[: at % (len(b) + 1)] + what + b[at % (len(b) + 1) :]


def text_mutations(draw: st.DrawFn, fmt: str) -> list[Callable[[bytes], bytes]]:
    at = draw(st.integers(0, 10**6))
    choices: list[Callable[[bytes], bytes]] = [
        lambda b: b"\xef\xbb\xbf" + b,
        lambda b: b"\xff\xfe" + b,
        insert(at, draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))),
        insert(at, draw(st.sampled_from([b"\x00", b"\x1b", b"\t", b"\r", b"\x85", b"\\"]))),
        lambda b: b[: at % (len(b) + 1)],
        lambda b: b + alias_bomb(draw(st.integers(6, 9))),
        lambda b: b.replace(b"peers:", b"peers: &p", 1) + b"\nmore: *p\n",
        lambda b: re.sub(rb"periods: \d+", b"periods: " + b"9" * draw(st.integers(5, 6000)), b),
        lambda b: b + b"\nx: " + b"[" * draw(st.integers(15, 30_000)) + b"\n",
        lambda b: b + b"\n---\na: 1\n",
        lambda b: (
            b
            + draw(
                st.sampled_from(
                    [
                        b"\nx: !!python/object:os.system ls\n",
                        b"\nx: !!binary aGk=\n",
                        b"\nx: !!set {a}\n",
                        b"\nx: !custom 1\n",
                        b"\n<<: {name: y}\n",
                        b"\nx: 2001-13-45\n",
                        b"\nname: again\n",
                        b"\n? [a, b]\n: 1\n",
                    ]
                )
            )
        ),
        insert(at, b"\n# " + b"x" * draw(st.sampled_from([1000, 1_000_000])) + b"\n"),
        lambda b: b.decode("utf-8", "replace").encode("utf-16"),
    ]
    picked = draw(st.lists(st.sampled_from(range(len(choices))), max_size=2))
    return [choices[i] for i in picked]


def csv_mutation(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind == 0:
        return CSV_TEXT.replace(b"100.5", draw(st.sampled_from([b"\xff", b"x" * 10_000, b"1e999"])))
    if kind == 1:
        return b"P2_load_kw," + b",".join(b"c%d" % i for i in range(100_000)) + b"\n1\n"
    if kind == 2:
        return CSV_TEXT[: draw(st.integers(0, len(CSV_TEXT)))]
    if kind == 3:
        return b"\xef\xbb\xbf" + CSV_TEXT.replace(b",", b"\x00", 3)
    return CSV_TEXT


@st.composite
def mutated_scenario(draw: st.DrawFn) -> tuple[str, bytes, bytes, bool]:
    """(suffix, scenario file, CSV file, whether to read it as text too)."""
    data = yaml.safe_load(CASES[draw(st.sampled_from(sorted(CASES)))])
    for _ in range(draw(st.integers(0, 3))):
        container, key = draw(st.sampled_from(places(data)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "replace":
            container[key] = draw(values)
        elif action == "delete":
            del container[key]
        elif isinstance(container, dict):
            container[draw(keys)] = draw(values)
        else:
            container.insert(key, draw(values))
        if not places(data):
            break
    fmt = draw(st.sampled_from(["yaml", "json"]))
    if fmt == "json":
        text = json.dumps(data, ensure_ascii=draw(st.booleans()))
    else:
        text = yaml.dump(data, Dumper=yaml.CSafeDumper, allow_unicode=draw(st.booleans()))
    for token, replacement in RAW.items():
        if token in text:
            text = text.replace(f'"{token}"', replacement).replace(token, replacement)
    blob = text.encode("utf-8", "surrogatepass")
    for mutate in text_mutations(draw, fmt):
        blob = mutate(blob)
    return fmt, blob, csv_mutation(draw), draw(st.booleans())


@pytest.fixture(scope="module")
def worker() -> Any:
    running = Worker()
    yield running
    running.stop()


def test_no_input_makes_a_reader_crash_hang_or_exhaust_memory(
    worker: Worker, tmp_path_factory: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    slowest = 0.0

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(mutated_scenario())
    def read_one(case: tuple[str, bytes, bytes, bool]) -> None:
        nonlocal slowest
        fmt, blob, csv, as_text = case
        shutil.rmtree(folder / "case", ignore_errors=True)
        (folder / "case").mkdir()
        (folder / "case" / CSV_NAME).write_bytes(csv)
        path = folder / "case" / f"s.{fmt}"
        path.write_bytes(blob)
        answer = worker.read(path, as_text)
        outcomes[answer["outcome"]] += 1
        slowest = max(slowest, answer.get("seconds", 0.0))
        if answer["outcome"] not in {"accepted", "refused"}:
            failures.append(f"{answer} on {blob[:200]!r}")

    read_one()
    total = sum(outcomes.values())
    tracebacks = outcomes["traceback"] + outcomes["crash"] + outcomes["long"]
    summary = (
        f"{tracebacks} tracebacks, {outcomes['hang']} hangs, {outcomes['memory']} memory"
        f" exhaustions on {total:,} mutated scenarios ({outcomes['accepted']:,} accepted,"
        f" {outcomes['refused']:,} refused in one line; slowest {slowest:.2f} s)"
    )
    with capsys.disabled():
        print("\n" + summary)
    assert not failures, summary + "\n" + "\n".join(failures[:10])
    assert total >= EXAMPLES * 0.9  # hypothesis may stop a little early on duplicates
