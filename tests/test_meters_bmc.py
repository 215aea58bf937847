"""Node power from the BMC: IPMI DCMI through a fake ``ipmitool`` on PATH, Redfish from a local
server on 127.0.0.1 (HTTP and HTTPS with a self-signed certificate made here)."""

from __future__ import annotations

import time

import pytest
from fakes.bmc import DCMI_OUTPUT, FakeIpmitool, RedfishServer

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.ipmi import IpmiMeter, parse_dcmi_power
from greentrack.meters.nodepower import NodePowerMeter, node_vs_components
from greentrack.meters.redfish import RedfishMeter, redfish_settings

# ---- the hold integration, on an explicit clock ---------------------------------------------


class _Scripted(NodePowerMeter):
    def __init__(self, powers):
        super().__init__(poll_s=0.1)
        self.powers = list(powers)

    def poll_w(self) -> float:
        p = self.powers.pop(0)
        if p is None:
            raise MeterError("BMC busy")
        return p


def test_hold_integration_and_a_bmc_that_stops_answering():
    m = _Scripted([100.0, 200.0, None, None, None, 50.0])
    t = [0.0]
    m.clock = lambda: t[0]
    m.start(0.0, poll=False)  # first reading: 100 W
    for step in range(1, 6):
        t[0] = step * 1.0
        m.poll_once()
    (r,) = m.read(5.5)
    # 100 W over [0, 1], 200 W over [1, 4] (the 3rd failure at t = 4 ends it), 0 W after,
    # then 50 W from t = 5
    assert r.energy_j == pytest.approx(100 + 200 * 3 + 50 * 0.5)
    assert r.component == "node" and r.device == "node:bmc" and r.method == "sampled"
    warnings = m.pop_warnings()
    assert "failed 3 times in a row" in warnings[0] and "answers again" in warnings[1]
    assert m.read(5.5)[0].energy_j == r.energy_j  # reads do not move it


# ---- IPMI ----------------------------------------------------------------------------------


def test_parse_the_real_dcmi_output():
    assert parse_dcmi_power(DCMI_OUTPUT.format(power=220, state="activated")) == 220.0
    with pytest.raises(MeterError, match=r"deactivated.*Redfish"):
        parse_dcmi_power(DCMI_OUTPUT.format(power=0, state="deactivated"))
    with pytest.raises(MeterError, match=r"no 'Instantaneous power reading'"):
        parse_dcmi_power("garbage")


@pytest.fixture
def ipmitool(tmp_path, monkeypatch) -> FakeIpmitool:
    return FakeIpmitool(tmp_path, 300.0).install(monkeypatch)


def test_ipmi_node_energy_within_2_percent_polled_at_0_1_s(ipmitool):
    meter = IpmiMeter(poll_s=0.1)
    assert meter.first_w == 300.0
    t0 = time.monotonic()
    meter.start(t0)
    deadline = time.monotonic() + 10
    while ipmitool.calls < 8 and time.monotonic() < deadline:
        time.sleep(0.05)
    t1 = time.monotonic()
    (r,) = meter.read(t1)
    meter.close()
    assert r.energy_j == pytest.approx(ipmitool.expected_energy_j(t0, t1), rel=0.02)
    assert r.power_w == 300.0 and meter.polls >= 6


@pytest.mark.parametrize(
    ("mode", "cls", "fix"),
    [
        ("nodev", MeterError, "sudo modprobe ipmi_devintf ipmi_si"),
        ("denied", MeterPermissionError, "udev rule"),
        ("invalid", MeterError, "no DCMI power reading; try Redfish"),
        ("deactivated", MeterError, "does not measure node power over DCMI"),
    ],
)
def test_ipmi_failures_give_the_fix(ipmitool, mode, cls, fix):
    ipmitool.set_mode(mode)
    with pytest.raises(cls) as info:
        IpmiMeter()
    assert fix in str(info.value) and "\n" not in str(info.value)


def test_ipmitool_missing_or_hanging(ipmitool, monkeypatch, tmp_path):
    monkeypatch.setenv("GREENTRACK_IPMITOOL", str(tmp_path / "nowhere" / "ipmitool"))
    with pytest.raises(MeterError, match=r"install ipmitool"):
        IpmiMeter()
    monkeypatch.delenv("GREENTRACK_IPMITOOL")
    ipmitool.set_mode("hang")
    t0 = time.monotonic()
    with pytest.raises(MeterError, match=r"timed out after 0.3 s"):
        IpmiMeter(timeout_s=0.3)
    assert time.monotonic() - t0 < 5


def test_ipmi_lost_mid_run_keeps_the_energy_so_far(ipmitool):
    meter = IpmiMeter(poll_s=0.05)
    meter.start(time.monotonic())
    deadline = time.monotonic() + 10
    while ipmitool.calls < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    ipmitool.set_mode("nodev")
    while not meter._lost and time.monotonic() < deadline:
        time.sleep(0.02)
    e1 = meter.read(time.monotonic())[0].energy_j
    time.sleep(0.2)
    e2 = meter.read(time.monotonic())[0].energy_j
    meter.close()
    assert e1 > 0 and e2 == e1  # frozen, not reset
    assert any("no longer counted" in w and "modprobe" in w for w in meter.pop_warnings())


# ---- Redfish -------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", ["Power", "EnvironmentMetrics", "PowerSubsystem"])
def test_redfish_schemas_over_http(tmp_path, schema):
    with RedfishServer(tmp_path, power_w=420.0, schema=schema) as bmc:
        meter = RedfishMeter(bmc.url, user=bmc.user, password=bmc.password)
        assert meter.first_w == pytest.approx(420.0)
        assert meter.source == schema and schema in meter.describe()["node:bmc"]
        meter.close()


def test_redfish_https_verifies_by_default(tmp_path):
    with RedfishServer(tmp_path, tls=True) as bmc:
        with pytest.raises(MeterError, match=r"certificate is not trusted.*GREENTRACK_REDFISH_CA"):
            RedfishMeter(bmc.url, user=bmc.user, password=bmc.password)
        trusted = RedfishMeter(
            bmc.url, user=bmc.user, password=bmc.password, cafile=str(bmc.cafile)
        )
        assert trusted.first_w == 350.0 and trusted.pop_warnings() == []
        off = RedfishMeter(bmc.url, user=bmc.user, password=bmc.password, verify=False)
        assert off.first_w == 350.0
        assert "verification is off" in off.pop_warnings()[0]


def test_redfish_credentials_rejected_and_masked(tmp_path, monkeypatch):
    with RedfishServer(tmp_path) as bmc:
        with pytest.raises(MeterPermissionError) as info:
            RedfishMeter(bmc.url, user=bmc.user, password="wrong-Passw0rd-123")
        assert "GREENTRACK_REDFISH_PASSWORD" in str(info.value)
        url = bmc.url.replace("http://", f"http://{bmc.user}:{bmc.password}@")
        bmc.fail = True
        with pytest.raises(MeterError) as info:
            RedfishMeter(url, user=bmc.user, password=bmc.password)
        assert bmc.password not in str(info.value) and "***" in str(info.value)


def test_redfish_polled_energy_and_settings_from_the_environment(tmp_path, monkeypatch):
    from greentrack.config import check_node

    assert redfish_settings(check_node({}, {})) is None  # nothing contacted by default
    with RedfishServer(tmp_path, power_w=500.0, schema="EnvironmentMetrics") as bmc:
        env = {"GREENTRACK_REDFISH_URL": bmc.url, "GREENTRACK_REDFISH_USER": bmc.user,
               "GREENTRACK_REDFISH_PASSWORD": bmc.password, "GREENTRACK_REDFISH_VERIFY": "0",
               "GREENTRACK_REDFISH_CHASSIS": "1"}  # fmt: skip
        s = redfish_settings(check_node({"poll_s": 0.1}, env))
        assert s is not None and s["verify"] is False and s["chassis"] == "1"
        assert s["poll_s"] == 0.1 and s["password"] == bmc.password
        meter = RedfishMeter(**s)
        t0 = time.monotonic()
        meter.start(t0)
        time.sleep(0.5)
        t1 = time.monotonic()
        (r,) = meter.read(t1)
        meter.close()
        assert r.energy_j == pytest.approx(500.0 * (t1 - t0), rel=0.02)
        with pytest.raises(MeterError, match=r"no chassis 'nope'"):
            RedfishMeter(bmc.url, user=bmc.user, password=bmc.password, chassis="nope")


def test_the_node_line_puts_components_beside_the_node():
    line = node_vs_components(3.6e6 * 1.25, 3.6e6 * 1.0)
    assert line == "measured at the node: 1.25 kWh; components: 1.00 kWh (80% of the node)"
    assert "of the node" not in node_vs_components(0.0, 5.0)
