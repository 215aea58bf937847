"""The registry's ``present`` checks: a host without the hardware never imports the meter's
module, and the meters opened, with their warnings, are the same as without the checks.

A check saying False must mean that the line's ``open`` returns None and leaves the context as
it was; each is tested against its ``open`` on simulated hosts (paths under the real sysfs
layout, the real environment variables, a simulated ``torch`` in ``sys.modules``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from greentrack.config import load_config
from greentrack.meters import registry
from greentrack.meters.registry import METERS, OpenContext, _resolve

CHECKED = [e for e in METERS if e.present]
ALL = frozenset(("gpu", "cpu", "ram", "node"))
META_MODULES = (
    "greentrack.meters.amdsmi",
    "greentrack.meters.hwmon",
    "greentrack.meters.apple",
    "greentrack.meters.accel_estimate",
    "greentrack.meters.nvml",
    "greentrack.meters.rapl",
)


def _state(ctx: OpenContext) -> tuple:
    return (sorted(ctx.covered), list(ctx.problems), sorted(ctx.claimed_pci))


def _torch(initialised: bool | Exception) -> types.ModuleType:
    """A stand-in for torch in sys.modules whose CUDA is (not) initialised, or broken."""

    def is_initialized() -> bool:
        if isinstance(initialised, Exception):
            raise initialised
        return initialised

    cuda = types.SimpleNamespace(
        is_initialized=is_initialized,
        device_count=lambda: 1,
        get_device_name=lambda i: "NVIDIA A100-SXM4-80GB",
    )
    return types.SimpleNamespace(cuda=cuda)  # type: ignore[return-value]


HOSTS = {
    "empty": {},
    "amdgpu driver, no amdsmi package": {"dirs": ["module/amdgpu"]},
    "GREENTRACK_AMDSMI=1": {"env": {"GREENTRACK_AMDSMI": "1"}},
    "empty hwmon class": {"dirs": ["class/hwmon"]},
    "Jetson INA3221 driver": {"dirs": ["bus/i2c/drivers/ina3221x"]},
    "GREENTRACK_APPLE=1, no zeus": {"env": {"GREENTRACK_APPLE": "1"}},
    "empty powercap": {"dirs": ["class/powercap"]},
    "GREENTRACK_NVML=1": {"env": {"GREENTRACK_NVML": "1"}},
    "torch without CUDA": {"torch": False},
    "torch with CUDA": {"torch": True},
    "torch broken": {"torch": RuntimeError("no driver")},
}


def _host(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = HOSTS[name]
    sysfs = tmp_path / "sys"
    for d in spec.get("dirs", []):
        (sysfs / d).mkdir(parents=True)
    sysfs.mkdir(exist_ok=True)
    monkeypatch.setenv("GREENTRACK_SYSFS", str(sysfs))
    for var in ("GREENTRACK_AMDSMI", "GREENTRACK_APPLE", "GREENTRACK_NVML"):
        monkeypatch.delenv(var, raising=False)
    for k, v in spec.get("env", {}).items():
        monkeypatch.setenv(k, v)
    if "torch" in spec:
        monkeypatch.setitem(sys.modules, "torch", _torch(spec["torch"]))
    else:
        monkeypatch.delitem(sys.modules, "torch", raising=False)


@pytest.mark.parametrize("host", sorted(HOSTS))
def test_a_check_saying_absent_means_open_returns_none_and_changes_nothing(
    host, tmp_path, monkeypatch
):
    _host(host, tmp_path, monkeypatch)
    config = load_config()
    said = {}
    for e in CHECKED:
        ctx = OpenContext(config, ALL)
        said[e.name] = present = bool(_resolve(e.present)(ctx))
        meter = e.opener()(ctx)
        if not present:
            assert meter is None, (host, e.name)
            assert _state(ctx) == ([], [], []), (host, e.name)
        elif meter is not None:
            meter.close()
    expected = {
        "empty": set(),
        "amdgpu driver, no amdsmi package": {"amdsmi"},
        "GREENTRACK_AMDSMI=1": {"amdsmi"},
        "empty hwmon class": {"hwmon"},
        "Jetson INA3221 driver": {"hwmon"},
        "GREENTRACK_APPLE=1, no zeus": {"apple"},
        "empty powercap": {"rapl"},
        "GREENTRACK_NVML=1": {"nvml"},
        "torch without CUDA": set(),
        "torch with CUDA": {"accel-estimate"},
        "torch broken": set(),
    }[host]
    assert {n for n, p in said.items() if p} == expected  # each check sees its hardware


def test_every_check_is_the_first_condition_of_a_meter_of_the_registry():
    assert {e.name for e in CHECKED} == {
        "rapl",
        "amdsmi",
        "hwmon",
        "apple",
        "nvml",
        "accel-estimate",
    }
    for e in CHECKED:
        mod, _, _fn = e.present.partition(":")
        assert mod == "greentrack.meters.presence" and callable(_resolve(e.present)), e.name
        assert e.open.partition(":")[0] != mod


_PROBE = """
import dataclasses, json, sys
from greentrack.config import load_config
from greentrack.meters import open_meters, registry

def opened():
    return [(type(m).__name__, m.name, m.describe(), m.notes(), m.pop_warnings())
            for m in open_meters(load_config())]

with_checks = opened()
loaded = [m for m in {modules!r} if m in sys.modules]
registry.METERS = tuple(dataclasses.replace(e, present=None) for e in registry.METERS)
print(json.dumps({{"with": with_checks, "without": opened(), "loaded": loaded}}))
"""


@pytest.mark.parametrize(
    "host", ["empty", "amdgpu driver, no amdsmi package", "GREENTRACK_APPLE=1, no zeus"]
)
def test_in_a_fresh_process_the_checks_skip_imports_and_change_no_meter(
    host, tmp_path, monkeypatch
):
    """A fresh interpreter, as a user's script: there the modules are not imported yet, so
    the checks are what decides (in this test process they are imported already)."""
    _host(host, tmp_path, monkeypatch)
    code = _PROBE.format(modules=META_MODULES)
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["with"] == out["without"]  # same meters, devices and warnings
    names = [m[1] for m in out["with"]]
    if host == "empty":
        assert names == ["cpu-estimate", "ram-estimate"] and out["loaded"] == []
    elif host.startswith("amdgpu"):  # the driver is here: amdsmi is imported and says why not
        assert names[0] == "amdsmi" and "amdsmi" in out["with"][0][4][0]
        assert out["loaded"] == ["greentrack.meters.amdsmi"]
    else:  # "a Mac": the apple meter's problem goes on the CPU estimate
        assert out["loaded"] == ["greentrack.meters.apple"]
        assert any("zeus-apple-silicon" in w for m in out["with"] for w in m[4])


def test_the_meter_classes_stay_importable_from_the_package():
    import greentrack.meters as meters

    for name in meters.__all__:
        assert getattr(meters, name) is not None, name
    assert set(meters.__all__) <= set(dir(meters))
    from greentrack.meters import NvmlMeter, RaplMeter
    from greentrack.meters.nvml import NvmlMeter as N
    from greentrack.meters.rapl import RaplMeter as R

    assert NvmlMeter is N and RaplMeter is R
    with pytest.raises(AttributeError):
        meters.NoSuchMeter  # noqa: B018
    assert registry.entry("amdsmi").present == "greentrack.meters.presence:amdgpu"
