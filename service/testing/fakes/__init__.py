"""Fake vendor APIs that speak the vendors' real wire protocols, for tests and benchmarks.

Each module builds a Starlette app and runs standalone on a loopback port:
``python -m service.testing.fakes.google --port 9001``.
"""
