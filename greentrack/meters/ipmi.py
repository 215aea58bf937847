"""Whole-node power from the BMC over IPMI DCMI: ``ipmitool dcmi power reading``.

``ipmitool`` (in-band, through the kernel's ``/dev/ipmi0``) prints::

        Instantaneous power reading:                   220 Watts
        Minimum during sampling period:                 88 Watts
        Maximum during sampling period:                420 Watts
        Average power reading over sample period:      213 Watts
        IPMI timestamp:                           Tue Dec  1 09:00:00 2026
        Sampling period:                          00000001 Seconds.
        Power reading state is:                   activated

The ``Instantaneous power reading`` is the node power (W); ``Power reading state is:
deactivated`` means the BMC does not measure (no figure). Each call runs with a timeout
(:data:`TIMEOUT_S`) in the meter's polling thread (:mod:`greentrack.meters.nodepower`), never on
the training thread. The command is ``GREENTRACK_IPMITOOL`` (default ``ipmitool`` on ``PATH``).

Failures and their fixes (said by ``greentrack detect`` and on the run):

- ``ipmitool`` not found → install it (``apt install ipmitool`` / ``dnf install ipmitool``).
- ``Could not open device at /dev/ipmi0 ...: No such file or directory`` → load the kernel
  modules (``sudo modprobe ipmi_devintf ipmi_si``).
- ``...: Permission denied`` → ``/dev/ipmi0`` is root's: run as root or give the user access
  (a udev rule ``KERNEL=="ipmi*", GROUP="ipmi", MODE="0660"`` and that group).
- ``Invalid command`` / ``DCMI request failed`` / state deactivated → this BMC has no DCMI power
  reading: try Redfish (:mod:`greentrack.meters.redfish`).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import TYPE_CHECKING

from greentrack.errors import MeterError, MeterPermissionError
from greentrack.meters.base import MeterStatus
from greentrack.meters.nodepower import IPMI_DEVICES, NodePowerMeter

if TYPE_CHECKING:
    from greentrack.meters.registry import DetectContext

__all__ = ["TIMEOUT_S", "IpmiMeter", "ipmitool_command", "parse_dcmi_power"]

TIMEOUT_S = 5.0
"""Longest wait for one ``ipmitool`` call (a BMC that hangs must not hold the poller). s."""

_INSTANT = re.compile(r"Instantaneous power reading\s*:\s*(\d+(?:\.\d+)?)\s*Watts", re.I)
_STATE = re.compile(r"Power reading state is\s*:\s*(\w+)", re.I)


def ipmitool_command() -> str:
    """The ``ipmitool`` executable (``GREENTRACK_IPMITOOL``, default from ``PATH``)."""
    return os.environ.get("GREENTRACK_IPMITOOL") or "ipmitool"


def parse_dcmi_power(text: str) -> float:
    """Node power (W) from ``ipmitool dcmi power reading`` output.

    Raises:
        MeterError: the output has no reading, or says the reading is deactivated.
    """
    state = _STATE.search(text)
    if state and state.group(1).lower() != "activated":
        raise MeterError(
            f"the BMC's DCMI power reading is {state.group(1)}: this BMC does not measure node "
            "power over DCMI (try Redfish: GREENTRACK_REDFISH_URL)"
        )
    m = _INSTANT.search(text)
    if m is None:
        first = " ".join(text.split())[:160] or "no output"
        raise MeterError(f"no 'Instantaneous power reading' in ipmitool's output ({first})")
    return float(m.group(1))


def _fix(stderr: str) -> tuple[str, type[MeterError]]:
    low = stderr.lower()
    if "permission denied" in low:
        return (
            "/dev/ipmi0 is not accessible to this user: run as root, or add a udev rule "
            '(KERNEL=="ipmi*", GROUP="ipmi", MODE="0660") and put this user in that group',
            MeterPermissionError,
        )
    if "could not open device" in low or "no such file" in low:
        return ("load the IPMI kernel modules: sudo modprobe ipmi_devintf ipmi_si", MeterError)
    if "invalid command" in low or "dcmi request failed" in low or "not supported" in low:
        return (
            "this BMC has no DCMI power reading; try Redfish (GREENTRACK_REDFISH_URL)",
            MeterError,
        )
    return ("check `ipmitool dcmi power reading`", MeterError)


def read_ipmi_power_w(exe: str | None = None, timeout_s: float = TIMEOUT_S) -> float:
    """Run ``ipmitool dcmi power reading`` once and parse it. Units: W.

    Raises:
        MeterError: not installed, timed out, failed (message has the fix); a permission
            problem is a :class:`MeterPermissionError`.
    """
    exe = exe or ipmitool_command()
    if shutil.which(exe) is None:
        raise MeterError(
            f"{exe!r} not found: install ipmitool (apt install ipmitool / dnf install ipmitool) "
            "to read node power from the BMC"
        )
    try:
        out = subprocess.run(
            [exe, "dcmi", "power", "reading"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise MeterError(f"ipmitool dcmi power reading timed out after {timeout_s:g} s") from e
    except OSError as e:
        raise MeterError(f"ipmitool could not run ({e})") from e
    if out.returncode != 0:
        err = " ".join((out.stderr or out.stdout).split())[:200]
        fix, cls = _fix(err)
        raise cls(f"ipmitool dcmi power reading failed ({err or f'exit {out.returncode}'}); {fix}")
    return parse_dcmi_power(out.stdout)


class IpmiMeter(NodePowerMeter):
    """Node power from ``ipmitool dcmi power reading`` (device ``node:bmc``, ``sampled``).

    Args:
        exe: the ipmitool executable (default :func:`ipmitool_command`).
        poll_s: seconds between readings.
        timeout_s: longest wait for one reading.
        probe: take a first reading now (``first_w``, W; ``greentrack detect``); False for a
            run: the polling thread takes it (``deferred``), the user's code never waits.

    Raises:
        MeterError: the probe fails (message has the fix).
    """

    name = "ipmi"
    model = "BMC via IPMI DCMI"

    def __init__(
        self,
        *,
        exe: str | None = None,
        poll_s: float = 1.0,
        timeout_s: float = TIMEOUT_S,
        probe: bool = True,
    ) -> None:
        super().__init__(poll_s=poll_s, deferred=not probe)
        self.exe = exe or ipmitool_command()
        self.timeout_s = timeout_s
        self.first_w = self.poll_w() if probe else None

    def poll_w(self) -> float:
        return read_ipmi_power_w(self.exe, self.timeout_s)


def detect_meter(ctx: DetectContext) -> list[MeterStatus]:
    """``ipmi``: whether ``ipmitool dcmi power reading`` answers here, with the node's power."""
    node = ctx.config.node
    if node["meter"] == "off":
        return [MeterStatus("ipmi", False, "node power is off ([node] meter = off)")]
    try:
        power_w = read_ipmi_power_w(node["ipmitool"], node["timeout_s"])
    except MeterError as e:
        return [MeterStatus("ipmi", False, f"node power over IPMI DCMI not available: {e}")]
    used = ctx.measured_by("node")
    if used:
        where = f"not used: {used} reads the node"
    elif node["meter"] == "auto" and not any(os.path.exists(d) for d in IPMI_DEVICES):
        where = 'not used by runs: no /dev/ipmi0 here (set [node] meter = "ipmi" to use it)'
    else:
        where = "runs record it beside the components, never added to them"
    return [
        MeterStatus(
            "ipmi",
            True,
            f"node:bmc {power_w:g} W now (ipmitool dcmi power reading); {where}",
            ["node:bmc"],
            "sampled",
        )
    ]
