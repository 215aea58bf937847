"""Issue 11 item 10: no secret at rest. Secrets planted where users put them (a database URL with
its password in a tag, a token variable in a param, ``run.warn(f"...{db}")``, names, the error
text, the command line) are swept for in every table of the store, every output format, the
spool (files and folder names), the dashboard, the exports and the captured logs."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import greentrack as gt
from greentrack.cli import main
from greentrack.config import load_config
from greentrack.meters import ReplayMeter
from greentrack.security import Masker, env_secrets, mask_secrets
from greentrack.store.dbapi import parse_url
from greentrack.store.spool import Spool

# letters, digits and dashes only: the same in JSON, CSV, HTML and LaTeX, so a grep finds them
DB_PW = "DbPass5521xq"
DB_URL = f"postgresql://app:{DB_PW}@dbhost:5432/prod"
HF = "hfSweepTok81c3d9"  # HF_TOKEN (a known token variable)
EM = "emTok4c2b77e1"  # ELECTRICITYMAPS_TOKEN (a configured provider token)
CORP = "corpKey0a9b8c7d"  # MYCORP_API_KEY (any *_KEY variable of 8+ characters)
WT = "wattPw77aa31"  # [providers.watttime] password in config.toml
SECRETS = (DB_PW, HF, EM, CORP, WT)


def _leaks(text: str | bytes) -> list[str]:
    if isinstance(text, bytes):
        return [s for s in SECRETS if s.encode() in text]
    return [s for s in SECRETS if s in text]


def _tree_bytes(root: Path) -> bytes:
    """Every file's bytes and every path name under ``root``."""
    out = []
    for p in sorted(root.rglob("*")):
        if p.name == "config.toml":  # the user's own settings, where the provider token lives
            continue
        out.append(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            out.append(p.read_bytes())
    return b"\n".join(out)


def _sqlite_dump(path: Path) -> str:
    """Every row of every table (``iterdump``: the whole database as SQL)."""
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert {"runs", "params", "tags", "events", "components", "samples"} <= set(tables)
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _cli(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


@pytest.fixture
def planted(gt_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_TOKEN", HF)
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", EM)
    monkeypatch.setenv("MYCORP_API_KEY", CORP)
    gt_home.mkdir(parents=True, exist_ok=True)
    (gt_home / "config.toml").write_text(
        f'[providers.watttime]\nusername = "me"\npassword = "{WT}"\n', encoding="utf-8"
    )
    return gt_home


def test_secret_sweep_every_table_output_spool_export_dashboard_and_log(
    planted: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="greentrack")
    vol = tmp_path / "vol"
    vol.write_text("the volume is not mounted")  # the store's folder is a file: spooled
    url = f"sqlite:///{vol}/runs.db"
    meter = ReplayMeter([(0.0, {"gpu:0": 20.0})])
    texts: list[str] = []

    # 1. a run whose store is away: its secrets would go to the spool
    with gt.track(f"spooled-{HF}", db=url, meters=[meter], params={"db": DB_URL},
                  tags={"tok": EM}, checkpoint_s=0.05) as spooled:  # fmt: skip
        spooled.warn(f"cannot reach {DB_URL} with {CORP}")
        time.sleep(0.12)
    assert any("spooled" in w for w in spooled.summary().warnings)
    spool_files = list((planted / "spool").rglob("*.jsonl"))
    assert spool_files
    assert _leaks(_tree_bytes(planted / "spool")) == []  # spool lines and folder names
    vol.unlink()
    vol.mkdir()

    # 2. the API: name, project, params, tags, warnings, the error text
    tracker = gt.track(f"api-{CORP}", project=f"p-{EM}", db=url, meters=[meter],
                       params={"db": DB_URL, "tok": HF}, tags={"h": f"x {HF} y"},
                       checkpoint_s=0.05)  # fmt: skip
    with pytest.raises(RuntimeError, match=HF), tracker as run:  # the exception is unchanged
        run.log_params(pw=WT, url=DB_URL)
        run.set_tags(y=f"token {EM}", wt=WT)
        run.warn(f"cannot reach {DB_URL}", source=f"src-{CORP}")
        run.log(step=1, loss=0.5)
        time.sleep(0.1)
        raise RuntimeError(f"boom {HF} at {DB_URL}")
    s = run.summary()
    texts.append(json.dumps(s.to_dict(), default=str) + str(s))
    assert s.params["db"] == "postgresql://app:***@dbhost:5432/prod"  # masked, not dropped
    assert s.params["tok"] == "***" and s.tags["h"] == "x *** y" and s.name == "api-***"

    # 3. `greentrack run --tag dburl=... --param tok=$HF_TOKEN -- CMD`, as a user types it
    env = dict(os.environ, GREENTRACK_HOME=str(planted))
    child = [sys.executable, "-c", "print('child ok')", "--hf", HF]
    done = subprocess.run(
        [sys.executable, "-m", "greentrack", "run", "--db", url, "--project", "cli",
         "--name", f"n-{EM}", "--tag", f"dburl={DB_URL}", "--param", f"tok={HF}",
         "--param", f"corp={CORP}", "--param", f"wt={WT}", "--", *child],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "child ok" in done.stdout
    texts.append(done.stdout + done.stderr)
    _cli("sync", "--db", url)
    assert list((planted / "spool").rglob("*.jsonl")) == []  # run 1 written too

    # every table of the store
    dump = _sqlite_dump(vol / "runs.db")
    assert "app:***@dbhost" in dump and spooled.id in dump and run.id in dump
    assert _leaks(dump) == []
    # every output format
    ids = [o["id"] for o in json.loads(_cli("runs", "--db", url, "--format", "json"))]
    assert len(ids) == 3
    for fmt in ("table", "csv", "json"):
        texts.append(_cli("runs", "--db", url, "--format", fmt))
    for rid in ids:
        for fmt in ("table", "json"):
            texts.append(_cli("show", rid, "--db", url, "--format", fmt))
    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("markdown", "latex", "json", "csv"):
        texts.append(_cli("report", *ids, "--db", url, "--format", fmt))
    _cli("report", *ids, "--db", url, "--format", "html", "-o", str(out / "r.html"))
    _cli("report", *ids, "--db", url, "--format", "latex", "--standalone", "-o", str(out / "r.tex"))
    for fmt in ("csv", "json"):
        texts.append(_cli("export", "--db", url, "--format", fmt))
    _cli("export", "--db", url, "--format", "parquet", "-o", str(out / "runs.parquet"))
    _cli("export", "--db", url, "--samples", run.id[:12], "-o", str(out / "samples.csv"))
    _cli("dashboard", "--db", url, "--all", "-o", str(out / "site"))
    assert len(list((out / "site" / "runs").glob("*.html"))) == 3
    texts.append(caplog.text)
    leaks = _leaks("\n".join(texts)) + _leaks(_tree_bytes(out)) + _leaks(_tree_bytes(planted))
    assert leaks == []


def test_spool_folder_is_named_by_the_masked_url_and_a_per_home_salt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql+psycopg://app:{DB_PW}@127.0.0.1:1/test"
    full = parse_url(url).sqlalchemy_url
    legacy = hashlib.sha256(full.encode()).hexdigest()[:16]  # 0.1.x: guessable offline
    unsalted = hashlib.sha256(parse_url(url).display.encode()).hexdigest()[:16]
    a = Spool.for_store(tmp_path / "a" / "spool", url)
    b = Spool.for_store(tmp_path / "b" / "spool", url)
    assert a.dir.name not in (legacy, unsalted) and DB_PW not in str(a.dir)
    assert a.dir.name != b.dir.name  # another home, another salt
    assert Spool.for_store(tmp_path / "a" / "spool", url).dir == a.dir  # stable in one home
    other_pw = url.replace(DB_PW, "rotated-pw")
    assert Spool.for_store(tmp_path / "a" / "spool", other_pw).dir == a.dir  # the password is out
    salt = tmp_path / "a" / "spool.salt"
    assert stat.S_IMODE(salt.stat().st_mode) == 0o600 and len(salt.read_text()) == 32


def test_a_spool_of_0_1_x_under_the_legacy_folder_name_is_found_and_synced(
    gt_home: Path, tmp_path: Path
) -> None:
    from tests_helpers import checkpoint

    url = f"sqlite:///{tmp_path / 'store.db'}"
    root = load_config().spool_dir
    legacy = root / hashlib.sha256(parse_url(url).sqlalchemy_url.encode()).hexdigest()[:16]
    Spool(legacy).append(checkpoint("cd" * 16, energy_j=42.0))  # as 0.1.x left it
    Spool(legacy).reject(checkpoint("ef" * 16, energy_j=1.0), "refused by 0.1.x")
    spool = Spool.for_store(root, url)
    assert spool.dir != legacy and not legacy.exists()
    assert [p.name for p in spool.pending()] == ["cd" * 16 + ".0.jsonl"]
    assert (spool.dir / "rejected" / ("ef" * 16 + ".0.jsonl")).exists()  # kept aside, moved
    result = CliRunner().invoke(main, ["sync", "--db", url])
    assert result.exit_code == 0 and "wrote 1" in result.output, result.output
    shown = json.loads(_cli("show", "cdcd", "--db", url, "--format", "json"))
    assert shown["energy_j"] == 42.0


def test_legacy_spool_files_join_an_existing_new_folder_without_overwriting(
    tmp_path: Path,
) -> None:
    from tests_helpers import checkpoint

    url = f"sqlite:///{tmp_path / 'store.db'}"
    root = tmp_path / "home" / "spool"
    new = Spool.for_store(root, url)
    new.append(checkpoint("cd" * 16, seq=2, energy_j=50.0))
    legacy = root / hashlib.sha256(parse_url(url).sqlalchemy_url.encode()).hexdigest()[:16]
    Spool(legacy).append(checkpoint("cd" * 16, seq=1, energy_j=40.0))  # same file name
    again = Spool.for_store(root, url)
    assert again.dir == new.dir and not legacy.exists()
    assert len(again.pending("cd" * 16)) == 2  # both kept: one under a claimed name


def test_masking_rules_env_tokens_urls_and_short_values() -> None:
    env = {"HF_TOKEN": "abcd1", "FOO_KEY": "short7", "BAR_SECRET": "longenough1",
           "PATH": "/usr/bin:/bin", "WANDB_API_KEY": "wandbkey99"}  # fmt: skip
    found = env_secrets(env)
    assert set(found) == {"abcd1", "longenough1", "wandbkey99"}  # FOO_KEY: under 8 characters
    mask = Masker(["tok-provider-1"], env=env)
    text = "see postgresql://u:pw1@h/db?password=qq9 abcd1 longenough1 tok-provider-1 /usr/bin"
    assert mask(text) == "see postgresql://u:***@h/db?password=*** *** *** *** /usr/bin"
    assert mask_secrets("abc", ["abc"]) == "abc"  # under 4 characters: never masked


def test_a_spool_made_while_the_salt_could_not_be_written_is_found_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk at start: no salt file yet, so the spool goes to the unsalted folder of the
    masked URL; once the salt exists, that folder is moved into the salted one."""
    from tests_helpers import checkpoint

    from greentrack.store import spool as spool_mod

    url = f"sqlite:///{tmp_path / 'store.db'}"
    root = tmp_path / "home" / "spool"
    with monkeypatch.context() as m:
        m.setattr(spool_mod, "_spool_salt", lambda path: "")
        early = Spool.for_store(root, url)
        early.append(checkpoint("ab" * 16, energy_j=3.0))
    later = Spool.for_store(root, url)
    assert later.dir != early.dir and not early.dir.exists()
    assert [p.name for p in later.pending()] == ["ab" * 16 + ".0.jsonl"]
