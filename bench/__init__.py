"""Benchmarks: `python -m bench.serve` (make bench)."""
