"""Simulated hardware for tests: a powercap RAPL tree (:mod:`fakes.powercap`) and NVML GPUs
under the real ``pynvml`` module (:mod:`fakes.nvml`); pytest fixtures in :mod:`fakes.fixtures`.

Device meters of issue 13: AMD GPUs behind a simulated ``amdsmi`` (:mod:`fakes.amd`, module in
``fakes/sim/amdsmi``), hwmon/IIO sysfs trees (:mod:`fakes.hwmon`), BMCs (:mod:`fakes.bmc`: a fake
``ipmitool`` and a Redfish server) and Apple silicon behind a simulated ``zeus_apple_silicon``
(:mod:`fakes.apple`, module in ``fakes/sim/zeus_apple_silicon``).

The clocks they share are in :mod:`fakes.clock`: ``FakeClock`` (an explicit clock, or the wall
clock while started: :mod:`fakes.nvml`, :mod:`fakes.amd`) and ``RewritingClock`` (sysfs trees
rewritten at each tick: :mod:`fakes.powercap`, :mod:`fakes.hwmon`).
"""
