"""Compiles the detection engine's components with mypyc; everything else is pyproject.toml.

The engine spends most of its time in Python-level work around small NumPy calls (per chunk,
per tick), which mypyc turns into C: +10-20 % events per CPU-second on the stress load, outputs
bit for bit the same (tests/engine/test_compiled.py). Records (processors/engine/state.py),
settings and metrics stay interpreted. ``LIQWATCH_COMPILE=0`` installs it all interpreted.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import setup

ENGINE = Path("processors/engine")
INTERPRETED = {"__init__.py", "config.py", "state.py", "metrics.py"}


def compiled_engine() -> list[str]:
    return sorted(str(p) for p in ENGINE.glob("*.py") if p.name not in INTERPRETED)


def ext_modules() -> list[object]:
    if os.environ.get("LIQWATCH_COMPILE", "1") == "0":
        return []
    from mypyc.build import mypycify  # noqa: PLC0415 - needed only when compiling

    # mypy reads [tool.mypy] from pyproject.toml; imports outside the compiled set are
    # only followed for their types
    paths = ["--follow-imports=silent", *compiled_engine()]
    return list(mypycify(paths, group_name="liqwatch_engine"))


setup(ext_modules=ext_modules())
