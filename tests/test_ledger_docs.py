"""Every example in docs/ledger.md runs: the Python blocks execute, and the command-line block
runs command by command (once `cli/main.py` registers `ledger` and `run --ledger`)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

DOC = Path(__file__).resolve().parents[1] / "docs" / "ledger.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("code", blocks("python"))
def test_python_examples_run(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(DOC), "exec"), {})


def test_command_line_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from p2pmarket.cli.main import app

    command = typer.main.get_command(app)
    commands = getattr(command, "commands", {})
    run_options = [o for p in commands["run"].params for o in getattr(p, "opts", [])]
    if "ledger" not in commands or "--ledger" not in run_options:
        pytest.skip("cli/main.py does not register `ledger` and `run --ledger` yet")
    monkeypatch.chdir(tmp_path)
    example = blocks("console")[0]
    for line in example.splitlines():
        args = shlex.split(line.removeprefix("$ p2pmarket "))
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, f"{line}\n{result.stdout}{result.stderr}"
