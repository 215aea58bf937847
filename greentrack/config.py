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

    [embodied]               # manufacturing emissions, amortised per run (README: Embodied)
    lifetime_years = 4       # expected lifespan of the hardware
    node = "*"               # count the node's chassis/board too (a row of embodied.csv)
    [embodied.kg]
    "gpu:h100" = 350         # override or add a table row, kg CO2e per device

    [node]                   # whole-node power from the BMC (README: Node power)
    meter = "auto"           # auto | ipmi | redfish | off       (GREENTRACK_NODE_METER)
    poll_s = 1.0             # seconds between BMC readings      (GREENTRACK_NODE_POLL_S)
    redfish_url = "https://10.0.0.5"                           # (GREENTRACK_REDFISH_URL)
    redfish_user = "monitor"                                   # (GREENTRACK_REDFISH_USER)
    redfish_password = "..."                                   # (GREENTRACK_REDFISH_PASSWORD)

    [providers.electricitymaps]
    token = "..."            # or ELECTRICITYMAPS_TOKEN
    [providers.watttime]
    username = "..."         # or WATTTIME_USERNAME / WATTTIME_PASSWORD
    password = "..."
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greentrack.errors import ConfigError

__all__ = [
    "CHECKPOINT_RANGE_S",
    "CPU_SHARES",
    "INTERVAL_RANGE_S",
    "KNOWN_KEYS",
    "Config",
    "check_checkpoint_s",
    "check_cpu_share",
    "check_embodied",
    "check_flush_timeout_s",
    "check_interval_s",
    "load_config",
    "unknown_keys",
]

log = logging.getLogger("greentrack.config")

#: Allowed sampling interval, seconds: below 10 ms the sampler costs the loop more than it
#: measures (and a run stores thousands of points a second); above an hour a run has no series.
INTERVAL_RANGE_S = (0.01, 3600.0)
#: Allowed longest time between two checkpoints to the store, seconds (50 ms to a day).
CHECKPOINT_RANGE_S = (0.05, 86400.0)

#: Top-level keys of ``config.toml`` (a key not here is reported with the closest one).
KNOWN_KEYS = (
    "region",
    "pue",
    "provider",
    "db",
    "interval_s",
    "checkpoint_s",
    "flush_timeout_s",
    "sysfs",
    "procfs",
    "cloud_metadata",
    "cpu_share",
    "providers",
    "embodied",
    "integrations",
    "node",
)
#: ``[node]`` keys (whole-node power from the BMC) -> the environment variable overriding each.
NODE_KEYS: dict[str, str] = {
    "meter": "GREENTRACK_NODE_METER",
    "poll_s": "GREENTRACK_NODE_POLL_S",
    "timeout_s": "GREENTRACK_NODE_TIMEOUT_S",
    "ipmitool": "GREENTRACK_IPMITOOL",
    "redfish_url": "GREENTRACK_REDFISH_URL",
    "redfish_user": "GREENTRACK_REDFISH_USER",
    "redfish_password": "GREENTRACK_REDFISH_PASSWORD",
    "redfish_chassis": "GREENTRACK_REDFISH_CHASSIS",
    "redfish_verify": "GREENTRACK_REDFISH_VERIFY",
    "redfish_ca": "GREENTRACK_REDFISH_CA",
}
NODE_METERS = ("auto", "ipmi", "redfish", "off")
#: Allowed time between two BMC readings, seconds.
NODE_POLL_RANGE_S = (0.05, 3600.0)
#: Keys of the ``[embodied]`` section (see :mod:`greentrack.carbon.embodied`).
KNOWN_EMBODIED_KEYS = (
    "enabled",
    "lifetime_years",
    "utilisation",
    "table",
    "kg",
    "node",
    "node_share",
    "cpu_sockets",
    "cpu_socket_share",
    "cpu_die_mm2",
    "ram_gib",
)
#: ``[providers.NAME]`` sections and the keys greentrack reads in them.
KNOWN_PROVIDER_KEYS: dict[str, tuple[str, ...]] = {
    "electricitymaps": ("token", "emission_factor_type"),
    "watttime": ("username", "password", "signal_type", "regions"),
    "uk": (),
    "cloud_metadata": ("timeout_s", "gcp_url", "aws_url", "azure_url"),
}
_COMMON_PROVIDER_KEYS = (
    "url",
    "timeout_s",
    "retries",
    "backoff_s",
    "max_retry_after_s",
    "cache",
    "cache_ttl_s",
    "cache_history_ttl_s",
)
_WARNED: set[str] = set()  # config warnings already given by this process

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
        flush_timeout_s: deadline of a run's final write to the store, seconds
            (``GREENTRACK_FLUSH_TIMEOUT_S``, config ``flush_timeout_s``, default 10); past it
            the final state goes to the spool.
        sysfs: root of sysfs for RAPL (``GREENTRACK_SYSFS``, default ``/sys``).
        procfs: root of procfs the estimates read (``GREENTRACK_PROCFS``, default ``/proc``).
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
    flush_timeout_s: float = 10.0
    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")
    cloud_metadata: bool = False
    cpu_share: str = "machine"
    providers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The ``[embodied]`` section, checked (lifetime, utilisation, node, ``kg`` overrides...).
    embodied: dict[str, Any] = field(default_factory=dict)
    #: The ``[integrations]`` section: integration name -> on (``mlflow = true``).
    integrations: dict[str, bool] = field(default_factory=dict)
    #: The ``[node]`` section over its environment variables (:data:`NODE_KEYS`), checked:
    #: ``meter``, ``poll_s``, ``timeout_s``, ``ipmitool``, ``redfish_*``. May hold a password.
    node: dict[str, Any] = field(default_factory=lambda: check_node({}, {}))

    def secrets(self) -> list[str]:
        """Every configured value that must never be stored or shown: provider tokens and
        passwords, the BMC's Redfish credentials."""
        from greentrack.security import provider_secrets

        return provider_secrets({**self.providers, "node": self.node})

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
            "flush_timeout_s": self.flush_timeout_s,
            "sysfs": str(self.sysfs),
            "procfs": str(self.procfs),
            "cpu_share": self.cpu_share,
            "cloud_metadata": self.cloud_metadata,
            "providers": {
                name: {k: ("***" if _is_secret(k) else v) for k, v in opts.items()}
                for name, opts in self.providers.items()
            },
            "node": {
                k: ("***" if _is_secret(k) and v else mask_url(v) if isinstance(v, str) else v)
                for k, v in self.node.items()
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


def _check_range(value: Any, what: str, bounds: tuple[float, float], meaning: str) -> float:
    lo, hi = bounds
    try:
        if isinstance(value, bool):
            raise TypeError
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{what}={value!r} is not a number; give {meaning} in seconds, {lo:g} to {hi:g}"
        ) from None
    if not (math.isfinite(x) and lo <= x <= hi):
        raise ConfigError(f"{what}={value!r} is out of range: {meaning} must be {lo:g} to {hi:g} s")
    return x


def check_interval_s(value: Any, what: str = "interval_s") -> float:
    """The sampling interval as a float in :data:`INTERVAL_RANGE_S`; else a one-line
    :class:`ConfigError` naming ``what`` and the allowed range. Units: s."""
    return _check_range(value, what, INTERVAL_RANGE_S, "the sampling interval")


FLUSH_TIMEOUT_RANGE_S = (0.1, 3600.0)


def check_flush_timeout_s(value: Any, what: str = "flush_timeout_s") -> float:
    """The final write's deadline as a float in :data:`FLUSH_TIMEOUT_RANGE_S`; else a one-line
    :class:`ConfigError` naming ``what`` and the allowed range. Units: s."""
    return _check_range(value, what, FLUSH_TIMEOUT_RANGE_S, "the flush deadline")


def check_checkpoint_s(value: Any, what: str = "checkpoint_s") -> float:
    """The checkpoint interval as a float in :data:`CHECKPOINT_RANGE_S`; else a one-line
    :class:`ConfigError` naming ``what`` and the allowed range. Units: s."""
    return _check_range(value, what, CHECKPOINT_RANGE_S, "the checkpoint interval")


def _closest(key: str, known: tuple[str, ...] | list[str]) -> str:
    import difflib  # only for the message

    match = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else f"; known keys: {', '.join(known)}"


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("greentrack: warning: %s", message)


def unknown_keys(data: dict[str, Any]) -> list[str]:
    """One warning per key of a parsed ``config.toml`` that greentrack does not read, each
    naming the closest known key (``regoin`` -> ``region``). Provider keys are checked only
    where one is a near miss of a known key (providers may take options added later)."""
    out = []
    for key in data:
        if key not in KNOWN_KEYS:
            out.append(f"unknown key {key!r} (ignored){_closest(key, KNOWN_KEYS)}")
    providers = data.get("providers")
    if isinstance(providers, dict):
        names = list(KNOWN_PROVIDER_KEYS)
        for name, opts in providers.items():
            if name not in KNOWN_PROVIDER_KEYS:
                out.append(f"unknown section [providers.{name}] (ignored){_closest(name, names)}")
                continue
            if not isinstance(opts, dict):
                continue
            known = [*KNOWN_PROVIDER_KEYS[name], *_COMMON_PROVIDER_KEYS]
            for key in opts:
                import difflib  # only for the message

                near = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
                if key not in known and near:
                    out.append(
                        f"unknown key {key!r} in [providers.{name}] (ignored); "
                        f"did you mean {near[0]!r}?"
                    )
    return out


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
        for message in unknown_keys(data):
            _warn_once(f"{path}: {message}")
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
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: pue must be a number >= 1.0") from None
    interval_default = check_interval_s(data.get("interval_s", 1.0), f"{path}: interval_s")
    checkpoint_default = check_checkpoint_s(data.get("checkpoint_s", 10.0), f"{path}: checkpoint_s")
    raw_flush = env.get("GREENTRACK_FLUSH_TIMEOUT_S") or data.get("flush_timeout_s")
    flush_timeout_s = 10.0
    if raw_flush is not None:
        flush_what = (
            "GREENTRACK_FLUSH_TIMEOUT_S"
            if env.get("GREENTRACK_FLUSH_TIMEOUT_S")
            else f"{path}: flush_timeout_s"
        )
        flush_timeout_s = check_flush_timeout_s(raw_flush, flush_what)
    raw_interval = env.get("GREENTRACK_INTERVAL_S")
    interval_s = (
        check_interval_s(raw_interval, "GREENTRACK_INTERVAL_S")
        if raw_interval
        else interval_default
    )
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
        interval_s=interval_s,
        checkpoint_s=checkpoint_default,
        flush_timeout_s=flush_timeout_s,
        sysfs=Path(env.get("GREENTRACK_SYSFS") or data.get("sysfs") or "/sys"),
        procfs=Path(env.get("GREENTRACK_PROCFS") or data.get("procfs") or "/proc"),
        cloud_metadata=bool(data.get("cloud_metadata", False)),
        cpu_share=check_cpu_share(
            env.get("GREENTRACK_CPU_SHARE") or str(data.get("cpu_share", "machine")),
            "GREENTRACK_CPU_SHARE" if env.get("GREENTRACK_CPU_SHARE") else f"{path}: cpu_share",
        ),
        providers=providers,
        embodied=check_embodied(data.get("embodied") or {}, f"{path}: [embodied]"),
        integrations=check_integrations(data.get("integrations") or {}, f"{path}: [integrations]"),
        node=check_node(data.get("node") or {}, env, f"{path}: [node]"),
    )


def check_node(section: Any, env: dict[str, str], what: str = "[node]") -> dict[str, Any]:
    """The ``[node]`` section overlaid by its environment variables (:data:`NODE_KEYS`; an
    empty variable is unset), checked: a bad value is a one-line :class:`ConfigError` naming
    where it came from and what it takes. Every key is present (None: not set)."""
    if not isinstance(section, dict):
        raise ConfigError(f'{what} must be a table, e.g. meter = "ipmi"')
    for key in section:
        if key not in NODE_KEYS:
            _warn_once(f"{what}: unknown key {key!r} (ignored){_closest(key, list(NODE_KEYS))}")
    out: dict[str, Any] = {}
    for key, var in NODE_KEYS.items():
        raw, origin = (env[var], var) if env.get(var) else (section.get(key), f"{what}: {key}")
        if key == "meter":
            meter = str(raw or "auto").strip().lower()
            if meter not in NODE_METERS:
                raise ConfigError(
                    f"{origin}={raw!r} is not a node meter; use auto (Redfish if redfish_url is "
                    "set, else IPMI where /dev/ipmi0 exists), ipmi, redfish or off"
                )
            out[key] = meter
        elif key in ("poll_s", "timeout_s"):
            default = 1.0 if key == "poll_s" else 5.0
            meaning = "the time between BMC readings" if key == "poll_s" else "a BMC's timeout"
            out[key] = (
                default if raw is None else _check_range(raw, origin, NODE_POLL_RANGE_S, meaning)
            )
        elif key == "redfish_verify":
            text = str(raw if raw is not None else "1").strip().lower()
            if text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ConfigError(f"{origin}={raw!r}: write true or false")
            out[key] = text in ("1", "true", "yes", "on")
        else:
            out[key] = None if raw in (None, "") else str(raw)
    url = out["redfish_url"]
    if out["meter"] == "redfish" and url is None:
        raise ConfigError(
            "the node meter is redfish but no BMC address is set: set GREENTRACK_REDFISH_URL "
            "or redfish_url in [node] (e.g. https://10.0.0.5)"
        )
    ca = out["redfish_ca"]
    if ca is not None and not os.path.isfile(ca):
        raise ConfigError(
            f"the Redfish CA file {ca!r} (redfish_ca / GREENTRACK_REDFISH_CA) does not exist: "
            "give the PEM file of the BMC's certificate authority"
        )
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(
            f"redfish_url {url!r} is not a URL: give the BMC's address, e.g. https://10.0.0.5"
        )
    return out


def check_integrations(section: Any, what: str = "[integrations]") -> dict[str, bool]:
    """The ``[integrations]`` section: each key an integration, each value true or false."""
    if not isinstance(section, dict):
        raise ConfigError(f"{what} must be a table, e.g. mlflow = true")
    for key, value in section.items():
        if not isinstance(value, bool):
            raise ConfigError(f"{what}: {key} = {value!r}; write {key} = true or {key} = false")
    return dict(section)


def check_embodied(section: Any, what: str = "[embodied]") -> dict[str, Any]:
    """The ``[embodied]`` section with its numbers checked; a bad one is a one-line
    :class:`ConfigError` naming the key and what it takes."""
    if not isinstance(section, dict):
        raise ConfigError(f"{what} must be a table of settings, e.g. lifetime_years = 5")
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key not in KNOWN_EMBODIED_KEYS:
            _warn_once(f"{what}: unknown key {key!r} (ignored){_closest(key, KNOWN_EMBODIED_KEYS)}")
            continue
        if key in ("table", "node"):
            out[key] = str(value)
        elif key == "enabled":
            out[key] = bool(value)
        elif key == "kg":
            if not isinstance(value, dict):
                raise ConfigError(f'{what}: kg must be a table: [embodied.kg] "gpu:h100" = 350')
            out[key] = dict(value)
        else:
            try:
                if isinstance(value, bool):
                    raise TypeError
                x = float(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{what}: {key}={value!r} is not a number") from None
            share = key in ("utilisation", "node_share", "cpu_socket_share")
            if not math.isfinite(x) or x <= 0 or (share and x > 1):
                limit = "in (0, 1]" if share else "> 0"
                raise ConfigError(f"{what}: {key}={value!r} must be {limit}")
            out[key] = x
    return out


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
