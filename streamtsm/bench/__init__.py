"""Benchmark engine (torch): latency of online TSM vs 3D-CNN windows, roofline, plots.

Lives inside the package so ``streamtsm bench`` works from an install; the scripts in the
repository's ``benchmarks/`` folder are thin wrappers around it. Not on the runtime path.
"""
