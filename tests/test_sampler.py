"""The sampler's bounded memory and exact energy over long (simulated) runs."""

from __future__ import annotations

import itertools
import math

import pytest

from greentrack.meters import ReplayMeter
from greentrack.sampler import Sampler


class FakeClock:
    def __init__(self) -> None:
        self.mono = 1000.0
        self.wall = 1.7e9

    def __call__(self) -> tuple[float, float]:
        return self.mono, self.wall

    def advance(self, dt: float) -> None:
        self.mono += dt
        self.wall += dt


def simulate(seconds: int, interval_s: float, max_points: int) -> tuple[Sampler, list]:
    clock = FakeClock()
    trace = [(0.0, {"gpu:0": 300.0}), (seconds / 2, {"gpu:0": 100.0})]
    flushed: list = []
    sampler = Sampler(
        [ReplayMeter(trace)],
        interval_s=interval_s,
        checkpoint_s=10.0,
        on_checkpoint=flushed.extend,
        max_points=max_points,
        clock=clock,
    )
    with sampler._lock:  # start without threads: the test drives the clock
        for m in sampler.meters:
            m.start(clock.mono)
        sampler.t0_mono, sampler.t0_wall = clock()
        sampler._last_checkpoint = clock.mono
        sampler._read(clock.mono, clock.wall, keep_all=True)
    for _ in range(int(seconds / interval_s)):
        clock.advance(interval_s)
        sampler.tick()
    with sampler._lock:
        sampler._read(clock.mono, clock.wall, keep_all=True)
    flushed.extend(sampler.take_pending())
    return sampler, flushed


def test_kept_points_grow_logarithmically_and_energy_is_exact() -> None:
    seconds, max_points = 200_000, 200
    sampler, flushed = simulate(seconds, 1.0, max_points)
    series = sampler.series["gpu:0"]
    n = len(series.t_s)
    # spacing = max(interval, elapsed / max_points): ~max_points * (1 + ln(T / max_points))
    bound = max_points * (1 + math.log(seconds / max_points)) + 2
    assert max_points < n <= bound
    assert n == len(flushed)  # every kept point reached the store exactly once
    expected_j = 300.0 * seconds / 2 + 100.0 * seconds / 2
    assert series.energy_j[-1] == pytest.approx(expected_j, rel=1e-12)
    # Each stored power is the mean over its interval: it reconstructs the energy exactly.
    pairs = itertools.pairwise(flushed)
    energy = sum(p * (t1 - t0) for (_, _, t0, _, _), (_, _, t1, _, p) in pairs)
    assert energy == pytest.approx(expected_j, rel=1e-9)


def test_short_runs_keep_every_interval() -> None:
    sampler, _ = simulate(120, 0.1, 5000)
    assert len(sampler.series["gpu:0"].t_s) == 1201
