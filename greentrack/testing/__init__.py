"""Test helpers that ship with greentrack, for its own tests and for users' own.

Simulated hardware and synthetic stores with a known ground truth: ``synthetic`` writes
deterministic runs straight into a store (reports, figures, dashboards and benchmarks built from
them are byte-for-byte stable); ``clock`` has a FakeClock that drives the scheduler's waiting loop
and pause controller without waiting. Nothing here is imported by ``import greentrack``.
"""
