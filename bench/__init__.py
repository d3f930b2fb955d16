"""Benchmarks: one module a figure, run as `make bench-<name>` (python -m bench.<name>)."""
