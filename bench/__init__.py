"""Benchmarks: run them as modules, e.g. `python -m bench.echo_overhead`; each prints its figures."""
