"""The engine's components run compiled (mypyc, setup.py), and the compiled engine gives the
same bytes as its Python sources: every output, every snapshot, every dead letter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgspec

import processors.engine
import processors.engine.cascade
import processors.engine.state
from tests.engine.compiled_runs import all_runs
from tests.engine.replay import Run, assert_same_run

ROOT = Path(__file__).resolve().parents[2]


def test_the_installed_engine_is_compiled_and_its_records_are_not() -> None:
    assert processors.engine.COMPILED, (
        "the engine runs from its Python sources: install liqwatch with a C compiler "
        "(pip install -e .) so setup.py compiles it, as the benchmarks and services expect"
    )
    assert not processors.engine.cascade.__file__.endswith(".py")
    # mypyc would drop frozen / kw_only from a compiled Struct (python/mypy#21938)
    assert processors.engine.state.__file__.endswith(".py")


def test_compiled_engine_gives_the_bytes_of_its_sources(tmp_path: Path) -> None:
    out = tmp_path / "interpreted.msgpack"
    env = {**os.environ, "LIQWATCH_ENGINE": "interpreted"}
    cmd = [sys.executable, "-m", "tests.engine.compiled_runs", str(tmp_path / "child"), str(out)]
    done = subprocess.run(
        cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sources = msgspec.msgpack.decode(out.read_bytes(), type=dict[str, Run])
    compiled = all_runs(tmp_path / "parent")
    assert sorted(compiled) == sorted(sources)
    for name, run in compiled.items():
        assert run[0], f"{name}: no outputs to compare"
        assert_same_run(run, sources[name])
    assert sum(len(run[0]) for run in compiled.values()) > 1_000
