"""Whole-node power from the BMC on real tracked runs: beside the components, never added.

A fake ``ipmitool`` on ``PATH`` (the real DCMI output format) and a local Redfish server over
HTTPS with a certificate made here stand in for the BMC; the tracked code, the store (SQLite),
``greentrack show`` and the price tag are the real ones. Ground truth: the node power the test
scripts, integrated over the run's own window.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakes.bmc import FakeIpmitool, RedfishServer
from tests_helpers import show_run

import greentrack as gt
from greentrack.carbon.static import static_intensity
from greentrack.cli import main
from greentrack.units import J_PER_KWH


@pytest.fixture
def ipmitool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIpmitool:
    fake = FakeIpmitool(tmp_path, 300.0).install(monkeypatch)
    monkeypatch.setenv("GREENTRACK_NODE_METER", "ipmi")  # no /dev/ipmi0 here: ask for it
    monkeypatch.setenv("GREENTRACK_NODE_POLL_S", "0.1")
    return fake


def test_ipmi_node_power_on_a_tracked_run(ipmitool: FakeIpmitool, sqlite_url: str) -> None:
    """The node's energy within 2 % of the scripted power (polled at 0.1 s), shown beside the
    components in the summary, the store, `show` and the price tag; the CO2e is of the node's
    energy × PUE, and says so."""
    track = gt.track("node", db=sqlite_url, region="FR", pue=1.2, interval_s=0.1)
    with track as run, run.phase("work"):
        time.sleep(1.0)
        ipmitool.set_power(420.0)
        time.sleep(2.0)
    s = run.summary()
    truth_j = ipmitool.expected_energy_j(run.t0_mono, run.t1_mono)
    assert truth_j > 900
    assert s.node_energy_j == pytest.approx(truth_j, rel=0.02)
    # the components are the estimates of this machine, and only they are in energy_j
    assert s.energy_j == pytest.approx(sum(c.energy_j for c in s.components))
    assert {c.component for c in s.components} == {"cpu", "ram"}
    assert [c.device for c in s.node] == ["node:bmc"] and s.node[0].method == "sampled"
    g_per_kwh, _ = static_intensity("FR")
    assert s.co2e_basis == "node"
    assert s.co2e_g == pytest.approx(s.node_energy_j * 1.2 / J_PER_KWH * g_per_kwh, rel=1e-6)
    text = str(s)
    assert "measured at the node:" in text and "of the node)" in text
    assert "CO2e of the node's energy" in text
    phase = s.phases[0]
    assert "node:bmc" not in phase.components and phase.energy_j == pytest.approx(
        sum(phase.components.values())
    )

    obj, table = show_run(sqlite_url, run.id)
    assert obj["energy_j"] == pytest.approx(s.energy_j)  # the store's sum leaves the node out
    assert obj["node_energy_j"] == pytest.approx(s.node_energy_j)
    assert obj["co2e_basis"] == "node" and obj["co2e_g"] == pytest.approx(s.co2e_g)
    assert all(c["component"] != "node" for c in obj["components"])
    assert [c["device"] for c in obj["node_power"]] == ["node:bmc"]
    assert "polled every 0.1 s" in obj["node_power"][0]["note"]
    share = s.energy_j / s.node_energy_j
    assert f"({share:.0%} of the node)" in table and "CO2e of the node's energy" in table
    # the phase's CO2e is of the node's energy in it too: more than its components' would be
    comp_g = phase.energy_j * 1.2 / J_PER_KWH * g_per_kwh
    assert obj["phases"][0]["co2e_g"] > 2 * comp_g

    from greentrack.report.pricetag import make_report

    md = make_report([run.id], db_url=sqlite_url, fmt="markdown").text
    assert "Energy, measured at the node" in md and "Components' share of the node" in md
    assert "Measured at the node:" in md and "of the node's energy" in md
    tag = json.loads(make_report([run.id], db_url=sqlite_url, fmt="json").text)
    pt = tag["runs"][0]["pricetag"]
    assert pt["node_energy_kwh"] == pytest.approx(s.node_energy_j / J_PER_KWH)
    # intensity = CO2e / the facility energy it is of (node × PUE), i.e. the zone's figure
    assert pt["intensity"]["time_weighted_g_per_kwh"] == pytest.approx(g_per_kwh, rel=1e-6)
    assert "Node (node:bmc): whole-node power from the BMC" in md  # its note, under Assumptions
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(make_report([run.id], db_url=sqlite_url,
                                                       fmt="csv").text)))  # fmt: skip
    assert float(rows[0]["node_energy_kwh"]) == pytest.approx(pt["node_energy_kwh"])
    assert rows[0]["co2e_basis"] == "node"
    frame = gt.runs_frame(db=sqlite_url)
    assert frame["node_energy_kwh"][0] == pytest.approx(pt["node_energy_kwh"])
    assert frame["energy_kwh"][0] == pytest.approx(s.energy_j / J_PER_KWH)


def test_the_bmc_is_never_waited_for_and_a_lost_bmc_falls_back(
    ipmitool: FakeIpmitool, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A BMC that hangs costs the run's start and stop nothing (it is polled off the training
    thread, with a timeout); one lost mid-run keeps the node energy so far, and the CO2e is then
    of the components, with a warning saying why."""
    monkeypatch.setenv("GREENTRACK_NODE_TIMEOUT_S", "0.1")
    ipmitool.set_mode("hang")
    t0 = time.monotonic()
    with gt.track("hang", db=sqlite_url, region="FR", interval_s=0.1) as run:
        started = time.monotonic() - t0
        time.sleep(1.0)  # >= 3 polls time out: the BMC is lost before it ever answered
        t1 = time.monotonic()
    stopped = time.monotonic() - t1
    assert started < 0.5 and stopped < 1.5, (started, stopped)
    s = run.summary()
    assert s.node == [] and s.co2e_basis == "components"  # never answered: no node figure
    assert any("timed out after 0.1 s" in w for w in s.warnings)
    assert any("failed 3 times in a row" in w for w in s.warnings)
    assert show_run(sqlite_url, run.id)[0]["node_energy_j"] is None
    assert any("CO2e is of the components' energy" in w for w in s.warnings)

    ipmitool.set_mode("ok")
    with gt.track("lost", db=sqlite_url, region="FR", interval_s=0.1) as run:
        time.sleep(0.6)
        ipmitool.set_mode("nodev")
        time.sleep(0.8)  # 3 failed polls at 0.1 s: the node is lost
    s = run.summary()
    assert s.node_energy_j is not None and 0.5 * 300 < s.node_energy_j < 1.2 * 300
    assert s.co2e_basis == "components"
    g_per_kwh, _ = static_intensity("FR")
    assert s.co2e_g == pytest.approx(s.energy_j / J_PER_KWH * g_per_kwh, rel=1e-6)
    assert any("no longer counted" in w and "modprobe" in w for w in s.warnings)
    obj, _ = show_run(sqlite_url, run.id)
    assert obj["co2e_basis"] == "components" and obj["co2e_g"] == pytest.approx(s.co2e_g)
    assert obj["node_energy_j"] == pytest.approx(s.node_energy_j)


def test_redfish_over_https_on_a_tracked_run_keeps_no_secret(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, gt_home: Path
) -> None:
    """Redfish over HTTPS with the test's own CA (verification on): the node's energy within
    2 %, configured in config.toml's [node] section; the password is in no stored byte, spool,
    log or report."""
    with RedfishServer(tmp_path, power_w=500.0, schema="EnvironmentMetrics", tls=True) as bmc:
        gt_home.mkdir(parents=True, exist_ok=True)
        (gt_home / "config.toml").write_text(
            "[node]\n"
            f'redfish_url = "{bmc.url}"\nredfish_user = "{bmc.user}"\n'
            f'redfish_password = "{bmc.password}"\nredfish_ca = "{bmc.cafile}"\npoll_s = 0.1\n'
        )
        changes = [(time.monotonic(), 500.0)]
        with gt.track("redfish", db=sqlite_url, region="DE", interval_s=0.1) as run:
            time.sleep(1.0)
            bmc.power_w = 650.0
            changes.append((time.monotonic(), 650.0))
            time.sleep(2.0)
            run.warn(f"the password {bmc.password} must be masked")
    s = run.summary()
    (a_t, a_w), (b_t, b_w) = changes
    truth_j = a_w * (b_t - max(a_t, run.t0_mono)) + b_w * (run.t1_mono - b_t)
    assert s.node_energy_j == pytest.approx(truth_j, rel=0.02)
    assert s.node[0].device == "node:bmc" and s.co2e_basis == "node"
    assert any(bmc.password not in w and "***" in w for w in s.warnings)
    obj, table = show_run(sqlite_url, run.id)
    assert "BMC via Redfish EnvironmentMetrics" in obj["node_power"][0]["note"]
    assert "measured at the node:" in table
    from greentrack.report.pricetag import make_report

    report = make_report([run.id], db_url=sqlite_url, fmt="markdown").text
    db_path = Path(sqlite_url.removeprefix("sqlite:///"))
    stored = b"".join(
        p.read_bytes() for p in [*db_path.parent.glob("store.db*"), *gt_home.rglob("*")]
        if p.is_file() and p.name != "config.toml"
    )
    assert bmc.password.encode() not in stored and bmc.password not in report + table


def test_a_bad_node_setting_is_one_line_before_the_users_code(
    gt_home: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from greentrack.config import load_config
    from greentrack.errors import ConfigError

    monkeypatch.setenv("GREENTRACK_NODE_METER", "bmc")
    with pytest.raises(ConfigError, match=r"GREENTRACK_NODE_METER='bmc' is not a node meter"):
        load_config()
    monkeypatch.setenv("GREENTRACK_NODE_METER", "redfish")
    with pytest.raises(ConfigError, match=r"no BMC address is set: set GREENTRACK_REDFISH_URL"):
        load_config()
    monkeypatch.setenv("GREENTRACK_REDFISH_URL", "https://10.0.0.5")
    monkeypatch.setenv("GREENTRACK_REDFISH_CA", "/nonexistent/bmc-ca.pem")
    with pytest.raises(ConfigError, match=r"CA file '/nonexistent/bmc-ca.pem'.*does not exist"):
        load_config()
    for var in ("GREENTRACK_NODE_METER", "GREENTRACK_REDFISH_URL", "GREENTRACK_REDFISH_CA"):
        monkeypatch.delenv(var)
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text('[node]\npoll_s = 0\nredfish_password = "pw-123456"\n')
    with pytest.raises(ConfigError, match=r"\[node\]: poll_s=0 is out of range"):
        load_config()
    (gt_home / "config.toml").write_text(
        '[node]\nredfish_url = "https://u:pw-123456@10.0.0.5"\nredfish_password = "pw-123456"\n'
    )
    public = json.dumps(load_config().public_dict())
    assert "pw-123456" not in public and '"redfish_password": "***"' in public
    assert "flush_timeout_s" in public and "procfs" in public
    # the user's code does not run when the setting is bad
    monkeypatch.setenv("GREENTRACK_NODE_METER", "sometimes")
    ran = []
    with pytest.raises(ConfigError), gt.track("bad", db=sqlite_url):
        ran.append(1)
    assert ran == []


def test_a_multi_node_runs_co2e_counts_every_rank(
    ipmitool: FakeIpmitool, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ranks on two hosts: the run's CO2e is the sum of both ranks' (each rank accounts its
    own devices; rank 0 alone was stored before schema 0005), on the node's energy where that
    host's BMC measured it."""
    from greentrack import hardware

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    monkeypatch.setenv("LOCAL_RANK", "0")
    run_id = "c" * 32
    summaries = {}
    for rank, host, node in ((1, "host-b", "ipmi"), (0, "host-a", "off")):
        monkeypatch.setattr(hardware, "hostname", lambda h=host: h)
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("GREENTRACK_NODE_METER", node)
        with gt.track("ranks", db=sqlite_url, run_id=run_id, region="FR", interval_s=0.1) as run:
            time.sleep(0.6)
        summaries[rank] = run.summary()
    assert summaries[1].co2e_basis == "node" and summaries[0].co2e_basis == "components"
    obj, table = show_run(sqlite_url, run_id)
    assert obj["co2e_g"] == pytest.approx(summaries[0].co2e_g + summaries[1].co2e_g)
    assert obj["co2e_basis"] == "node+components"
    assert obj["energy_j"] == pytest.approx(summaries[0].energy_j + summaries[1].energy_j)
    assert obj["node_energy_j"] == pytest.approx(summaries[1].node_energy_j)
    nodes = {n["host"]: n for n in obj["nodes"]}
    assert nodes["host-a"]["node_energy_j"] is None
    assert nodes["host-b"]["node_energy_j"] == pytest.approx(summaries[1].node_energy_j)
    assert "of the nodes' energy where a BMC measured it" in table
    # a what-if re-accounts what the CO2e was of: host-b's node series, host-a's components
    from greentrack.carbon.whatif import whatif_run

    again = whatif_run(sqlite_url, run_id, region="FR")
    assert again.co2e_g == pytest.approx(obj["co2e_g"], rel=0.02)
    again_de = whatif_run(sqlite_url, run_id, region="DE")
    assert again_de.co2e_g == pytest.approx(
        obj["co2e_g"] * static_intensity("DE")[0] / static_intensity("FR")[0], rel=0.02
    )
    g_per_kwh, _ = static_intensity("FR")
    basis_j = summaries[0].energy_j + summaries[1].node_energy_j
    assert obj["co2e_energy_j"] == pytest.approx(basis_j)
    assert obj["co2e_g"] == pytest.approx(basis_j / J_PER_KWH * g_per_kwh, rel=1e-6)


def test_the_node_power_example_prints_the_node_line(gt_home: Path) -> None:
    """`python examples/node_power.py` (its own simulated 350 W BMC): the node line, with the
    node's energy 350 W × the run's duration, and the CO2e of it."""
    import os
    import re
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GREENTRACK_REDFISH")}
    env.update(GREENTRACK_HOME=str(gt_home))
    done = subprocess.run(
        [sys.executable, str(repo / "examples" / "node_power.py"), "--seconds", "1.5"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    duration_s = float(re.search(r"finished, ([\d.]+) s", done.stdout).group(1))
    node_kwh = float(re.search(r"measured at the node: ([\d.e+-]+) kWh", done.stdout).group(1))
    assert node_kwh * J_PER_KWH == pytest.approx(350.0 * duration_s, rel=0.05)  # 0.1 s printed
    assert "CO2e of the node's energy" in done.stdout


def test_a_spooled_node_run_syncs_to_the_same_figures_twice(
    ipmitool: FakeIpmitool, tmp_path: Path
) -> None:
    """The store is away for the whole run: `greentrack sync` writes the node's figure beside
    the components, the CO2e of the node's energy; syncing the same spool again changes
    nothing (the totals are recomputed from the rows, not added to)."""
    from greentrack.config import load_config
    from greentrack.store.spool import Spool

    blocker = tmp_path / "mnt"
    blocker.write_text("the database volume is not mounted")  # a file where the folder should be
    url = f"sqlite:///{blocker}/runs.db"
    with gt.track("offline-node", db=url, region="FR", interval_s=0.1, checkpoint_s=0.2) as run:
        time.sleep(1.0)
    s = run.summary()
    assert s.node_energy_j and s.co2e_basis == "node"
    spool = Spool.for_store(load_config().spool_dir, url)
    lines = {p: p.read_bytes() for p in spool.dir.rglob("*") if p.is_file()}
    blocker.unlink()
    blocker.mkdir()
    for _ in range(2):
        done = CliRunner().invoke(main, ["sync", "--db", url])
        assert done.exit_code == 0, done.output
        obj, _ = show_run(url, run.id)
        assert obj["energy_j"] == pytest.approx(s.energy_j, rel=1e-12)
        assert obj["node_energy_j"] == pytest.approx(s.node_energy_j, rel=1e-12)
        assert obj["co2e_basis"] == "node" and obj["co2e_g"] == pytest.approx(s.co2e_g)
        for p, data in lines.items():  # put the same spool back: a replay
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
