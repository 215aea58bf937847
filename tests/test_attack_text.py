"""Issue 11 item 5 (a)/(b) at the call: text the store cannot hold (a NUL byte, a lone surrogate)
is refused where it is written when it is a name or a key (a one-line error; at ``track()`` for
the run's own names, before the user's code runs), and escaped when it is free text (param and
tag values, warnings, the error text: NUL -> U+FFFD, a lone surrogate -> ``\\udXXX``). The run's
energy always lands, on SQLite and on PostgreSQL; an old spool holding such text syncs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.errors import ConfigError, GreentrackError
from greentrack.meters import ReplayMeter
from greentrack.store import queries
from greentrack.store.spool import Spool

BAD = ["\ud800", "a\x00b", "x\udcff"]


def _meter() -> ReplayMeter:
    return ReplayMeter([(0.0, {"gpu:0": 50.0})])


@pytest.mark.parametrize("bad", BAD)
def test_names_and_keys_the_store_cannot_hold_are_refused_at_the_call(
    bad: str, sqlite_url: str
) -> None:
    ran = []
    for kwargs in ({"name": f"n{bad}"}, {"project": f"p{bad}"}, {"params": {f"k{bad}": 1}},
                   {"tags": {f"t{bad}": "v"}}):  # fmt: skip
        with pytest.raises(ConfigError) as e, gt.track(db=sqlite_url, meters=[_meter()], **kwargs):
            ran.append(kwargs)
        msg = str(e.value)
        assert "\n" not in msg and "the store cannot hold" in msg, msg
        assert "\x00" not in msg and msg.encode("utf-8")  # printable, encodable
    assert ran == []
    with gt.track("ok", db=sqlite_url, meters=[_meter()], checkpoint_s=0.05) as run:
        for call in (lambda: run.log(step=1, **{f"m{bad}": 1.0}),
                     lambda: run.phase(f"ph{bad}").__enter__(),
                     lambda: run.log_params(**{f"k{bad}": 1}),
                     lambda: run.set_tags(**{f"t{bad}": 1})):  # fmt: skip
            with pytest.raises(GreentrackError, match="the store cannot hold"):
                call()
        run.log(step=1, fine=1.0)
    conn = queries.open_store(sqlite_url)
    obj = queries.get_run(conn, run.id)
    conn.close()
    assert obj["status"] == "finished" and obj["metrics"] == {"fine": 1.0}
    assert obj["energy_j"] == pytest.approx(run.summary().energy_j)


def test_free_text_is_escaped_and_the_energy_lands(store_url: str, gt_home: Path) -> None:
    tracker = gt.track("esc", db=store_url, meters=[_meter()], checkpoint_s=0.05,
                       params={"p": "a\x00b\ud800c"}, tags={"t": "x\x00"})  # fmt: skip
    with pytest.raises(ValueError), tracker as run:
        run.log_params(q="\udcff")
        run.set_tags(u="1\x002")
        run.warn("w\ud800\x00!")
        time.sleep(0.1)
        raise ValueError("bad\x00value")
    s = run.summary()
    assert s.params == {"p": "a\ufffdb\\ud800c", "q": "\\udcff"}
    assert s.tags == {"t": "x\ufffd", "u": "1\ufffd2"}
    conn = queries.open_store(store_url)
    obj = queries.get_run(conn, run.id)
    conn.close()
    assert obj["status"] == "failed" and obj["energy_j"] == pytest.approx(s.energy_j)
    assert obj["energy_j"] > 0
    assert obj["params"] == s.params and obj["tags"] == s.tags
    assert obj["error"] == "ValueError: bad\ufffdvalue"
    assert "w\\ud800\ufffd!" in [e["message"] for e in obj["events"]]
    assert not any("refused" in w or "left out" in w for w in s.warnings), s.warnings
    assert not list((gt_home / "spool").rglob("rejected/*.jsonl"))


def test_greentrack_run_refuses_an_undecodable_param_name_and_escapes_a_value(
    tmp_path: Path, sqlite_url: str
) -> None:
    marker = tmp_path / "child-ran"
    child = [sys.executable.encode(), b"-c", f"open({str(marker)!r}, 'w').close()".encode()]
    base = [sys.executable.encode(), b"-m", b"greentrack", b"run", b"--db", sqlite_url.encode()]
    bad_key = subprocess.run(
        [*base, b"--param", b"k\xff=v", b"--", *child],
        env=dict(os.environ), capture_output=True, timeout=120,
    )  # fmt: skip
    err = bad_key.stderr.decode("utf-8", "replace")
    assert bad_key.returncode == 1 and not marker.exists(), err
    assert err.startswith("Error: parameter name") and len(err.strip().splitlines()) == 1
    bad_value = subprocess.run(
        [*base, b"--project", b"argv", b"--tag", b"t=v\xff", b"--", *child],
        env=dict(os.environ), capture_output=True, timeout=120,
    )  # fmt: skip
    assert bad_value.returncode == 0, bad_value.stderr.decode("utf-8", "replace")
    assert marker.exists()
    shown = CliRunner().invoke(main, ["show", "latest", "--db", sqlite_url, "--format", "json"])
    assert json.loads(shown.output)["tags"]["t"] == "v\\udcff"


def test_sync_of_an_old_spool_with_a_surrogate_writes_every_run(store_url: str) -> None:
    from tests_helpers import checkpoint

    spool = Spool.for_store(load_config().spool_dir, store_url)
    poisoned = checkpoint("aa" * 16, energy_j=5.0, sample=True,
                          params={"p\ud800": "1"}, tags={"t": "x\ud800"})  # fmt: skip
    poisoned.run["name"] = "n\ud800"
    poisoned.events = [{"id": "e" * 32, "t_s": 1.7e9, "level": "warning", "source": "user",
                        "message": "w\ud800"}]  # fmt: skip
    spool.append(checkpoint("11" * 16, energy_j=7.0, sample=True))  # sorted before it
    spool.append(poisoned)  # as 0.1.x wrote it: json escapes the surrogate, replay gets it back
    spool.append(checkpoint("bb" * 16, energy_j=9.0, sample=True))
    result = CliRunner().invoke(main, ["sync", "--db", store_url])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "wrote 3" in result.output
    assert spool.pending() == []
    conn = queries.open_store(store_url)
    try:
        energies = {rid: queries.get_run(conn, rid)["energy_j"] for rid in ("1111", "aaaa", "bbbb")}
    finally:
        conn.close()
    assert energies == {"1111": 7.0, "aaaa": 5.0, "bbbb": 9.0}
