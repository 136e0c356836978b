"""Runnable benchmarks: each script prints a table and a one-line summary (see the README).

Run one with ``python -m benchmarks.<name>`` or all with ``python -m benchmarks``.
"""
