"""Benchmarks behind ``engram bench``."""
