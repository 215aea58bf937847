"""Configuration: ``$GREENTRACK_HOME/config.toml`` overlaid by environment variables.

Precedence for every setting: explicit argument > environment variable > config file > default.
Nothing here touches the network. Tokens are kept only in memory: they are never written to the
database, to logs or to reports (:meth:`Config.public_dict` masks them).

Example ``~/.greentrack/config.toml``::

    region = "ES"            # default grid zone
    pue = 1.2                # power usage effectiveness of the facility
    provider = "static"      # static | electricitymaps | watttime | uk
    db = "sqlite:////home/me/.greentrack/greentrack.db"
    interval_s = 1.0         # sampling interval
    cpu_share = "machine"    # estimates: machine-wide load, or "process" (this job's tree)
    cloud_metadata = false   # ask the cloud metadata server for the region (network!)

    [providers.electricitymaps]
    token = "..."            # or ELECTRICITYMAPS_TOKEN
    [providers.watttime]
    username = "..."         # or WATTTIME_USERNAME / WATTTIME_PASSWORD
    password = "..."
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError

__all__ = ["CPU_SHARES", "Config", "check_cpu_share", "load_config"]

_ENV_TOKENS = {
    ("electricitymaps", "token"): "ELECTRICITYMAPS_TOKEN",
    ("watttime", "username"): "WATTTIME_USERNAME",
    ("watttime", "password"): "WATTTIME_PASSWORD",
}


@dataclass
class Config:
    """Resolved settings.

    Attributes:
        home: greentrack's directory (``GREENTRACK_HOME``, default ``~/.greentrack``).
        db_url: SQLAlchemy URL of the store (``GREENTRACK_DB``; default SQLite in ``home``).
        region: default grid zone (``GREENTRACK_REGION``), or None.
        region_origin: where ``region`` came from: ``environment``, ``config file`` or None.
        pue: power usage effectiveness applied on top of device energy (``GREENTRACK_PUE``).
        provider: intensity provider name (``GREENTRACK_PROVIDER``).
        interval_s: sampling interval in seconds (``GREENTRACK_INTERVAL_S``).
        checkpoint_s: longest time between two checkpoints to the store, seconds.
        sysfs: root of sysfs for RAPL (``GREENTRACK_SYSFS``, default ``/sys``).
        cloud_metadata: whether region detection may query a cloud metadata server.
        cpu_share: what the CPU and RAM *estimates* count (``GREENTRACK_CPU_SHARE``):
            ``machine`` (machine-wide load, installed RAM; the default) or ``process`` (the CPU
            time and memory of this process and everything it starts).
        providers: per-provider settings (urls, tokens). Never persisted.
    """

    home: Path
    db_url: str
    region: str | None = None
    region_origin: str | None = None
    pue: float = 1.0
    provider: str = "static"
    interval_s: float = 1.0
    checkpoint_s: float = 10.0
    sysfs: Path = Path("/sys")
    cloud_metadata: bool = False
    cpu_share: str = "machine"
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def spool_dir(self) -> Path:
        """Where readings wait while the store is unreachable."""
        return self.home / "spool"

    def provider_settings(self, name: str) -> dict[str, Any]:
        """Settings of one provider (may contain secrets: never persist them)."""
        return dict(self.providers.get(name, {}))

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to show: secrets masked, passwords removed from the DB URL."""
        from greentrack.security import mask_url

        return {
            "home": str(self.home),
            "db_url": mask_url(self.db_url),
            "region": self.region,
            "pue": self.pue,
            "provider": self.provider,
            "interval_s": self.interval_s,
            "checkpoint_s": self.checkpoint_s,
            "sysfs": str(self.sysfs),
            "cpu_share": self.cpu_share,
            "cloud_metadata": self.cloud_metadata,
            "providers": {
                name: {k: ("***" if _is_secret(k) else v) for k, v in opts.items()}
                for name, opts in self.providers.items()
            },
        }


def _is_secret(key: str) -> bool:
    return any(w in key.lower() for w in ("token", "password", "key", "secret"))


def _float_env(env: dict[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number; set it to e.g. {default}") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def load_config(env: dict[str, str] | None = None) -> Config:
    """Read the config file and the environment. Cheap (no network, no heavy imports)."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("GREENTRACK_HOME") or Path.home() / ".greentrack").expanduser()
    data: dict[str, Any] = {}
    path = home / "config.toml"
    if path.is_file():
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path} is not valid TOML ({e}); fix or delete it") from None
    providers: dict[str, dict[str, Any]] = {
        k: dict(v) for k, v in (data.get("providers") or {}).items() if isinstance(v, dict)
    }
    for (prov, key), var in _ENV_TOKENS.items():
        if env.get(var):
            providers.setdefault(prov, {})[key] = env[var]
    region, origin = None, None
    if env.get("GREENTRACK_REGION"):
        region, origin = env["GREENTRACK_REGION"], "environment"
    elif data.get("region"):
        region, origin = str(data["region"]), "config file"
    db_url = env.get("GREENTRACK_DB") or data.get("db") or f"sqlite:///{home / 'greentrack.db'}"
    try:
        pue_default = float(data.get("pue", 1.0))
        interval_default = float(data.get("interval_s", 1.0))
        checkpoint_default = float(data.get("checkpoint_s", 10.0))
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: pue, interval_s and checkpoint_s must be numbers") from None
    pue = _float_env(env, "GREENTRACK_PUE", pue_default)
    if pue < 1.0:
        raise ConfigError(f"PUE must be >= 1.0 (got {pue}); 1.0 means no facility overhead")
    return Config(
        home=home,
        db_url=str(db_url),
        region=region,
        region_origin=origin,
        pue=pue,
        provider=env.get("GREENTRACK_PROVIDER") or str(data.get("provider", "static")),
        interval_s=_float_env(env, "GREENTRACK_INTERVAL_S", interval_default),
        checkpoint_s=checkpoint_default,
        sysfs=Path(env.get("GREENTRACK_SYSFS") or data.get("sysfs") or "/sys"),
        cloud_metadata=bool(data.get("cloud_metadata", False)),
        cpu_share=check_cpu_share(
            env.get("GREENTRACK_CPU_SHARE") or str(data.get("cpu_share", "machine")),
            "GREENTRACK_CPU_SHARE" if env.get("GREENTRACK_CPU_SHARE") else f"{path}: cpu_share",
        ),
        providers=providers,
    )


CPU_SHARES = ("machine", "process")


def check_cpu_share(value: str, what: str = "cpu_share") -> str:
    """``machine`` or ``process``; anything else is a one-line error naming where it came from."""
    share = value.strip().lower()
    if share not in CPU_SHARES:
        raise ConfigError(
            f"{what}={value!r} is not a CPU share; use machine (machine-wide load, the default) "
            "or process (this process and its children)"
        )
    return share
