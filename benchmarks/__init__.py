"""Benchmarks of followup, each runnable with ``python -m benchmarks.<name>.run``."""
