"""Benchmarks that compose producers and processors (wired into ``liqwatch bench``)."""
