"""The labelled TDP × utilisation estimate for accelerators torch sees but no meter reads. The
devices are simulated on the real ``torch.cuda`` (its functions patched), as a CUDA process
that initialised two GPUs would show them."""

from __future__ import annotations

import time

import pytest
import torch

import greentrack as gt
from greentrack.config import load_config
from greentrack.meters import open_meters
from greentrack.meters.accel_estimate import AccelEstimateMeter, lookup_tdp, table_path
from greentrack.store import queries


def _cuda(monkeypatch, names, utilisation=None):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(names))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: names[i])

    def util(i):
        if utilisation is None:
            raise RuntimeError("pynvml module not found, please install pynvml")
        return utilisation[i]

    monkeypatch.setattr(torch.cuda, "utilization", util)


def test_table_is_cited_and_matches_the_longest_pattern():
    tdp_w, source = lookup_tdp("NVIDIA H100 80GB HBM3")
    assert tdp_w == 700.0 and "H100" in source and "datasheet" in source
    assert lookup_tdp("AMD Instinct MI250X")[0] == 560.0
    assert lookup_tdp("NVIDIA A100-SXM4-80GB")[0] == 400.0  # not "NVIDIA A10" (150 W)
    assert lookup_tdp("NVIDIA A10")[0] == 150.0
    assert lookup_tdp("Mystery Accelerator 9000") is None
    rows = [line for line in table_path().read_text().splitlines() if not line.startswith("#")]
    for line in rows[1:]:  # every row names its source document
        source = line.split(",", 2)[2].lower()
        assert any(w in source for w in ("datasheet", "data sheet", "specifications", "brief"))


def test_utilisation_from_torch_and_assumed_when_unknown(monkeypatch):
    _cuda(monkeypatch, ["Tesla T4", "NVIDIA L4"], utilisation=[50, 25])
    meter = AccelEstimateMeter([(0, "Tesla T4"), (1, "NVIDIA L4"), (2, "Mystery Accelerator 9000")])
    assert meter.devices == ["gpu:estimate-0", "gpu:estimate-1"]
    (warning,) = meter.pop_warnings()
    assert "Mystery Accelerator 9000" in warning and "NOT counted" in warning
    meter.start(0.0)
    got = {r.device: r for r in meter.read(2.0)}
    assert got["gpu:estimate-0"].energy_j == pytest.approx(70 * 0.5 * 2.0)
    assert got["gpu:estimate-1"].energy_j == pytest.approx(72 * 0.25 * 2.0)
    assert got["gpu:estimate-0"].method == "estimated"
    assert "torch.cuda.utilization" in meter.notes()["gpu:estimate-0"]
    _cuda(monkeypatch, ["Tesla T4"])  # no pynvml: assumed 100 %
    meter = AccelEstimateMeter([(0, "Tesla T4")])
    meter.start(0.0)
    (r,) = meter.read(1.5)
    assert r.energy_j == pytest.approx(70 * 1.5)
    note = meter.notes()["gpu:estimate-0"]
    assert "assumed 100 %" in note.replace("100%", "100 %") and "NVIDIA T4 datasheet" in note


def test_no_torch_cuda_means_no_estimate(monkeypatch, no_nvml, no_powercap):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    assert "AccelEstimateMeter" not in [type(m).__name__ for m in open_meters(load_config())]


def test_a_tracked_run_on_an_unmetered_gpu(monkeypatch, no_nvml, no_powercap, sqlite_url):
    _cuda(monkeypatch, ["NVIDIA A100-SXM4-80GB"], utilisation=[80])
    with gt.track("unmetered", db=sqlite_url, interval_s=0.05) as run:
        time.sleep(0.3)
    conn = queries.open_store(sqlite_url)
    try:
        obj = queries.get_run(conn, run.id)
    finally:
        conn.close()
    (gpu,) = [c for c in obj["components"] if c["device"] == "gpu:estimate-0"]
    assert gpu["method"] == "estimated"
    expected = 400 * 0.8 * (run.t1_mono - run.t0_mono)
    assert gpu["energy_j"] == pytest.approx(expected, rel=0.02)
    assert "TDP 400 W" in gpu["note"] and "A100" in gpu["note"]
