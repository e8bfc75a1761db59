"""Tests marked ``interpreted`` swap an engine function for its reference (monkeypatch), which
calls between compiled engine modules never see. When this process runs the compiled engine,
each module's selected ``interpreted`` tests run once in a child pytest on the Python sources
(``LIQWATCH_ENGINE=interpreted``), and each test here reports its own outcome from there: it
fails if the child failed it or did not run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from processors import engine

MARK = "interpreted"
CHILD_TIMEOUT_S = 900
INTERNAL = "pytest.py::internal"


class ChildRuns:
    """Per test module: the selected marked tests, and their outcomes once the child ran."""

    def __init__(self) -> None:
        self.selected: dict[str, list[str]] = {}  # module file → node ids
        self.outcomes: dict[str, dict[str, str]] = {}  # module file → node id → failure ("" ok)

    def outcome(self, item: pytest.Item) -> str | None:
        """None if the child passed the test, else why not."""
        module = str(item.path)
        if module not in self.outcomes:
            self.outcomes[module] = _run_child(self.selected[module], item.config.rootpath)
        results = self.outcomes[module]
        if item.nodeid not in results:
            crash = results.get(INTERNAL, "")  # junit's name for a crash of pytest itself
            return f"{item.nodeid} did not run in the interpreted child\n{crash}"
        return results[item.nodeid] or None


_runs = ChildRuns()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}: runs on the engine's Python sources")


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:  # after -k / -m deselection
        if item.get_closest_marker(MARK) is not None:
            _runs.selected.setdefault(str(item.path), []).append(item.nodeid)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not engine.COMPILED or pyfuncitem.get_closest_marker(MARK) is None:
        return None  # pytest calls the test here
    failure = _runs.outcome(pyfuncitem)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    return True


def _run_child(nodeids: list[str], root: Path) -> dict[str, str]:
    """Runs the node ids on the Python sources; node id → failure message ("" if passed)."""
    with tempfile.TemporaryDirectory(prefix="interpreted-") as tmp:
        report = Path(tmp) / "junit.xml"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
        cmd += [f"--junitxml={report}", *nodeids]
        env = {**os.environ, "LIQWATCH_ENGINE": "interpreted"}
        done = subprocess.run(
            cmd,
            check=False,  # the outcomes are read from the report
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
        if not report.exists():
            tail = (done.stdout + done.stderr)[-3000:]
            return dict.fromkeys(nodeids, f"the interpreted child wrote no report:\n{tail}")
        return _outcomes(report)


def _outcomes(report: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        # junit names a module-level test "tests.engine.test_x" + "test_name[params]"
        module = case.get("classname", "").replace(".", "/") + ".py"
        nodeid = f"{module}::{case.get('name', '')}"
        bad = [e for e in case if e.tag in ("failure", "error", "skipped")]
        out[nodeid] = "\n".join(f"{e.tag}: {e.get('message', '')}\n{e.text or ''}" for e in bad)
    return out
