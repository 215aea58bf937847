"""Whole-node power from the BMC over Redfish (DMTF DSP0266; DSP8010 schemas).

Resources read, under the BMC's base URL (``GREENTRACK_REDFISH_URL``, e.g. ``https://10.0.0.5``)::

    /redfish/v1/Chassis                        Members[] -> the chassis (GREENTRACK_REDFISH_CHASSIS
                                               picks one by Id, else the first with power)
    /redfish/v1/Chassis/{id}/EnvironmentMetrics    PowerWatts.Reading            (newer, preferred)
    /redfish/v1/Chassis/{id}/PowerSubsystem        PowerSupplies -> each Metrics
                                                   InputPowerWatts.Reading, summed (PSU input)
    /redfish/v1/Chassis/{id}/Power                 PowerControl[0].PowerConsumedWatts (legacy,
                                                   deprecated in 2020.4 but the most common)

The first of these the chassis links to is used, polled in the meter's own thread
(:mod:`greentrack.meters.nodepower`) with a timeout; method ``sampled``, device ``node:bmc``.

Credentials: HTTP basic auth from ``GREENTRACK_REDFISH_USER`` / ``GREENTRACK_REDFISH_PASSWORD``
(or the constructor). They are masked (:mod:`greentrack.security`) in every message this meter
emits, and the ``*_PASSWORD`` variable is masked by the run's masker too; nothing is stored.

TLS: certificates are verified by default (the system store, or ``GREENTRACK_REDFISH_CA`` =
a PEM file); ``GREENTRACK_REDFISH_VERIFY=0`` (``verify=False``) turns verification off, for a
BMC with a self-signed certificate on a trusted management network, and says so on the run.
Nothing is contacted unless ``GREENTRACK_REDFISH_URL`` is set: no network by default.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.base import MeterStatus
from greentrack.meters.nodepower import NodePowerMeter

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext
from greentrack.security import mask_secrets

__all__ = ["RedfishMeter", "redfish_settings"]

TIMEOUT_S = 5.0
"""Longest wait for one Redfish request. Units: s."""


def redfish_settings(node: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Redfish settings of a checked ``[node]`` section (``Config.node``, the environment
    over the file), or None when no BMC address is set (nothing is contacted)."""
    if not node.get("redfish_url") or node.get("meter") == "off":
        return None
    return {
        "url": node["redfish_url"],
        "user": node.get("redfish_user"),
        "password": node.get("redfish_password"),
        "chassis": node.get("redfish_chassis"),
        "verify": node.get("redfish_verify", True),
        "cafile": node.get("redfish_ca"),
        "poll_s": node.get("poll_s", 1.0),
        "timeout_s": node.get("timeout_s", TIMEOUT_S),
    }


class RedfishMeter(NodePowerMeter):
    """Node power from a Redfish BMC (device ``node:bmc``, ``sampled``).

    Args:
        url: base URL of the BMC (``https://host[:port]``).
        user, password: basic-auth credentials (None: no auth header).
        chassis: the chassis ``Id`` to read (None: the first that reports power).
        verify: verify the TLS certificate (default True).
        cafile: a PEM file of trusted certificates (with ``verify``).
        poll_s: seconds between readings.
        timeout_s: longest wait for one request.
        probe: find the power resource and take a first reading now (``first_w``, W;
            ``greentrack detect``); False for a run: the polling thread does both (``deferred``).

    Raises:
        MeterError: the BMC cannot be reached or has no power resource (message has the fix);
            rejected credentials are a :class:`MeterPermissionError`.
    """

    name = "redfish"

    def __init__(
        self,
        url: str,
        *,
        user: str | None = None,
        password: str | None = None,
        chassis: str | None = None,
        verify: bool = True,
        cafile: str | None = None,
        poll_s: float = 1.0,
        timeout_s: float = TIMEOUT_S,
        probe: bool = True,
    ) -> None:
        super().__init__(poll_s=poll_s, deferred=not probe)
        self.base = url.rstrip("/")
        self.timeout_s = timeout_s
        self._secrets = [s for s in (password, user) if s]
        self._headers = {"Accept": "application/json", "OData-Version": "4.0"}
        if user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        if self.base.startswith("https://"):
            if verify:
                self._ctx: ssl.SSLContext | None = ssl.create_default_context(cafile=cafile)
            else:
                self._ctx = ssl._create_unverified_context()
                self.warn(
                    f"Redfish TLS verification is off (GREENTRACK_REDFISH_VERIFY=0) for "
                    f"{self._mask(self.base)}: use only on a trusted management network"
                )
        else:
            self._ctx = None
        self._chassis = chassis
        self.source, self._paths = "", []
        self.model = "BMC via Redfish"
        self.first_w: float | None = None
        if probe:
            self.prepare()
            self.first_w = self.poll_w()

    def prepare(self) -> None:
        """Find the chassis's power resource (a few GETs). Raises :class:`MeterError`."""
        self.source, self._paths = self._resolve(self._chassis)
        self.model = f"BMC via Redfish {self.source}"

    def _mask(self, text: str) -> str:
        return mask_secrets(text, self._secrets)

    def _get(self, path: str) -> dict[str, Any]:
        url = path if path.startswith("http") else self.base + path
        req = urllib.request.Request(url, headers=self._headers)
        where = self._mask(url)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s, context=self._ctx) as resp:
                body = resp.read(4_000_000)
        except urllib.error.HTTPError as e:
            if e.code in (401, 403):
                raise MeterPermissionError(
                    f"Redfish GET {where} refused (HTTP {e.code}): set GREENTRACK_REDFISH_USER and "
                    "GREENTRACK_REDFISH_PASSWORD to an account allowed to read the chassis"
                ) from None
            raise MeterError(f"Redfish GET {where} failed (HTTP {e.code} {e.reason})") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ssl.SSLCertVerificationError):
                raise MeterError(
                    f"Redfish {where}: the BMC's TLS certificate is not trusted "
                    f"({self._mask(str(reason.verify_message or reason))}): set "
                    "GREENTRACK_REDFISH_CA to its CA file, or GREENTRACK_REDFISH_VERIFY=0 on a "
                    "trusted management network"
                ) from None
            raise MeterError(
                f"Redfish {where} cannot be reached ({self._mask(str(reason))}): check "
                "GREENTRACK_REDFISH_URL"
            ) from None
        except (TimeoutError, OSError) as e:
            raise MeterError(f"Redfish GET {where} failed ({self._mask(str(e))})") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise MeterError(f"Redfish GET {where} did not return JSON") from None
        if not isinstance(data, dict):
            raise MeterError(f"Redfish GET {where} did not return a JSON object")
        return data

    @staticmethod
    def _link(obj: Mapping[str, Any], key: str) -> str | None:
        ref = obj.get(key)
        if isinstance(ref, Mapping) and isinstance(ref.get("@odata.id"), str):
            return ref["@odata.id"]
        return None

    def _resolve(self, chassis: str | None) -> tuple[str, list[str]]:
        """The power resource to poll: ``(source, [paths])``."""
        members = self._get("/redfish/v1/Chassis").get("Members") or []
        refs = [m["@odata.id"] for m in members if isinstance(m, Mapping) and "@odata.id" in m]
        if chassis is not None:
            refs = [r for r in refs if r.rstrip("/").rsplit("/", 1)[-1] == chassis]
            if not refs:
                raise MeterError(
                    f"Redfish: no chassis {chassis!r} at {self._mask(self.base)}/redfish/v1/Chassis"
                    " (GREENTRACK_REDFISH_CHASSIS)"
                )
        for ref in refs:
            ch = self._get(ref)
            env_ref = self._link(ch, "EnvironmentMetrics")
            if env_ref:
                return "EnvironmentMetrics", [env_ref]
            sub = self._link(ch, "PowerSubsystem")
            if sub:
                psus_ref = self._link(self._get(sub), "PowerSupplies")
                if psus_ref:
                    psus = self._get(psus_ref).get("Members") or []
                    metrics = []
                    for m in psus:
                        if isinstance(m, Mapping) and "@odata.id" in m:
                            link = self._link(self._get(m["@odata.id"]), "Metrics")
                            if link:
                                metrics.append(link)
                    if metrics:
                        return "PowerSubsystem", metrics
            power = self._link(ch, "Power")
            if power:
                return "Power", [power]
        raise MeterError(
            f"Redfish at {self._mask(self.base)}: no chassis links EnvironmentMetrics, "
            "PowerSubsystem or Power: this BMC does not report node power over Redfish"
        )

    def poll_w(self) -> float:
        """One reading of the node power (W) from the resolved resource."""
        total = 0.0
        for path in self._paths:
            data = self._get(path)
            if self.source == "EnvironmentMetrics":
                value = (data.get("PowerWatts") or {}).get("Reading")
            elif self.source == "PowerSubsystem":
                value = (data.get("InputPowerWatts") or {}).get("Reading")
            else:
                controls = data.get("PowerControl") or [{}]
                value = controls[0].get("PowerConsumedWatts") if controls else None
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise MeterError(f"Redfish {self._mask(path)} has no power reading ({value!r})")
            total += float(value)
        return total


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``redfish``: whether the BMC at ``GREENTRACK_REDFISH_URL`` reports node power."""
    s = redfish_settings(ctx.config.node)
    if s is None:
        return [
            MeterStatus(
                "redfish",
                False,
                "GREENTRACK_REDFISH_URL not set (the BMC's address, e.g. https://10.0.0.5, with "
                "GREENTRACK_REDFISH_USER / GREENTRACK_REDFISH_PASSWORD, or redfish_url in "
                "[node] of config.toml): nothing contacted",
            )
        ]
    try:
        meter = RedfishMeter(**s)
    except MeterError as e:
        return [MeterStatus("redfish", False, f"node power over Redfish not available: {e}")]
    notes = "".join(f"; {w}" for w in meter.pop_warnings())
    return [
        MeterStatus(
            "redfish",
            True,
            f"node:bmc {meter.first_w:g} W now ({meter.model}){notes}; runs record it beside "
            "the components, never added to them",
            ["node:bmc"],
            "sampled",
        )
    ]
