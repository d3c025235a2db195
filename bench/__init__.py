"""Benchmarks (``make bench``; ``make bench QUICK=1`` for the short run)."""
