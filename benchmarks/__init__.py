"""Benchmarks: load generation, measurement of a stream processor as a subprocess, and peer comparisons.

Everything here is benchmark-only: product code never imports it.
"""
