"""Opening the BMC meters on a run: the registry's ``open`` functions for Redfish and IPMI.

Here, not in :mod:`greentrack.meters.ipmi` / :mod:`greentrack.meters.redfish`: a run on a machine
without a BMC must not pay for importing ``subprocess``, ``ssl`` and ``urllib`` (~20 ms cold);
those modules load only once a BMC is configured or found (``tests/test_packaging.py`` checks).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from greentrack.errors import ConfigError
from greentrack.meters.nodepower import IPMI_DEVICES

if TYPE_CHECKING:
    from greentrack.meters.base import Meter
    from greentrack.meters.registry import OpenContext

__all__ = ["open_ipmi", "open_redfish"]


def open_redfish(ctx: OpenContext) -> Meter | None:
    """The node's power over Redfish where a BMC address is set (``[node] redfish_url`` or
    ``GREENTRACK_REDFISH_URL``) and the node meter is ``auto`` or ``redfish``; the chassis is
    found and polled off the training thread (never waited for)."""
    node = ctx.config.node
    if not node.get("redfish_url") or node["meter"] not in ("auto", "redfish"):
        return None
    if not ctx.needs("node"):
        return None
    from greentrack.meters.redfish import RedfishMeter, redfish_settings

    settings = redfish_settings(node)
    if settings is None:
        return None
    try:
        meter = RedfishMeter(**settings, probe=False)
    except (OSError, ValueError) as e:  # an unreadable CA file (checked at load, then removed?)
        raise ConfigError(f"Redfish settings unusable: {type(e).__name__}: {e}") from None
    ctx.covered.add("node")
    return meter


def open_ipmi(ctx: OpenContext) -> Meter | None:
    """The node's power over IPMI DCMI, polled off the training thread (never waited for).

    ``[node] meter = "ipmi"`` opens it whatever is here (a failing ``ipmitool`` is then a
    warning on the run, with the fix); ``auto`` (the default) only where the kernel's IPMI
    device exists and ``ipmitool`` is on ``PATH``, so a machine without a BMC pays nothing."""
    node = ctx.config.node
    if node["meter"] not in ("auto", "ipmi") or not ctx.needs("node"):
        return None
    if node["meter"] == "auto" and not any(os.path.exists(d) for d in IPMI_DEVICES):
        return None
    import shutil

    from greentrack.meters.ipmi import IpmiMeter, ipmitool_command

    exe = node["ipmitool"] or ipmitool_command()
    if node["meter"] == "auto" and shutil.which(exe) is None:
        return None
    ctx.covered.add("node")
    return IpmiMeter(exe=exe, poll_s=node["poll_s"], timeout_s=node["timeout_s"], probe=False)
