"""Simulated hardware for tests: a powercap RAPL tree (:mod:`fakes.powercap`) and NVML GPUs
under the real ``pynvml`` module (:mod:`fakes.nvml`); pytest fixtures in :mod:`fakes.fixtures`.
"""
