"""Benchmarks that compose producers and processors (wired into ``liqwatch bench``)."""

# worker and naive runs of ``liqwatch bench engine``, alternated; the ratio uses the best of
# each: other load on a shared machine only ever slows a run down (as timeit takes the minimum
# of its repeats)
WORKER_REPEATS = 2


def engine_build() -> str:
    """How this process runs the engine's components (setup.py compiles them)."""
    import processors.engine  # noqa: PLC0415 - the CLI imports this package without the engine

    if processors.engine.COMPILED:
        return "compiled (mypyc)"
    return "interpreted (Python sources)"
