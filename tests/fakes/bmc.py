"""Simulated BMCs: a fake ``ipmitool`` on ``PATH`` and a local Redfish server (HTTP/HTTPS).

``FakeIpmitool(tmp_path).install(monkeypatch)`` writes an executable ``ipmitool`` (a shell
script) first on ``PATH``; ``ipmitool dcmi power reading`` prints the real DCMI output format
with the power in :attr:`FakeIpmitool.power_w` (a file the script reads at each call, so a test
changes the node's power by :meth:`FakeIpmitool.set_power`, which records the monotonic time of
each change: the ground truth). ``mode`` makes it fail like the real tool does: ``nodev`` (no
kernel module), ``denied`` (no access to /dev/ipmi0), ``invalid`` (no DCMI), ``deactivated``,
``hang`` (never answers).

``RedfishServer(power_w=..., tls=True)`` serves ``/redfish/v1/Chassis`` and one chassis linking
``Power`` (legacy), ``EnvironmentMetrics`` or ``PowerSubsystem`` (two PSUs) as chosen, on
127.0.0.1 with basic auth, over HTTPS with a self-signed certificate for 127.0.0.1 made by the
``cryptography`` package (:attr:`RedfishServer.cafile` trusts it).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["DCMI_OUTPUT", "FakeIpmitool", "RedfishServer", "self_signed_cert"]

DCMI_OUTPUT = """
    Instantaneous power reading:                   {power} Watts
    Minimum during sampling period:                 88 Watts
    Maximum during sampling period:                420 Watts
    Average power reading over sample period:      213 Watts
    IPMI timestamp:                           Tue Dec  1 09:00:00 2026
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   {state}

"""

_NODEV = "Could not open device at /dev/ipmi0 or /dev/ipmi/0 or /dev/ipmidev/0: "  # ipmitool's
_SCRIPT = """#!/bin/sh
d="{dir}"
mode=$(cat "$d/mode")
echo x >> "$d/calls"
if [ "$1 $2 $3" != "dcmi power reading" ]; then echo "usage" >&2; exit 1; fi
case "$mode" in
  nodev) echo "{nodev}No such file or directory" >&2; exit 1;;
  denied) echo "{nodev}Permission denied" >&2; exit 1;;
  invalid) echo "DCMI request failed because: Invalid command (c1)" >&2; exit 1;;
  hang) sleep 30;;
esac
p=$(cat "$d/power")
state=activated
[ "$mode" = deactivated ] && state=deactivated
cat <<OUT
{body}OUT
"""


class FakeIpmitool:
    """An ``ipmitool`` executable whose node power the test sets."""

    def __init__(self, root: Path, power_w: float = 300.0) -> None:
        self.dir = Path(root) / "fake-ipmitool"
        self.dir.mkdir(parents=True, exist_ok=True)
        body = DCMI_OUTPUT.format(power="$p", state="$state")
        exe = self.dir / "ipmitool"
        exe.write_text(_SCRIPT.format(dir=self.dir, body=body, nodev=_NODEV))
        exe.chmod(0o755)
        self.changes: list[tuple[float, float]] = []
        self.set_mode("ok")
        self.set_power(power_w)

    def install(self, monkeypatch: Any) -> FakeIpmitool:
        monkeypatch.setenv("PATH", f"{self.dir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.delenv("GREENTRACK_IPMITOOL", raising=False)
        return self

    def set_mode(self, mode: str) -> None:
        (self.dir / "mode").write_text(mode + "\n")

    def set_power(self, power_w: float) -> None:
        tmp = self.dir / ".power"
        tmp.write_text(f"{power_w:g}\n")
        os.replace(tmp, self.dir / "power")
        self.changes.append((time.monotonic(), power_w))

    @property
    def calls(self) -> int:
        try:
            return len((self.dir / "calls").read_text().splitlines())
        except FileNotFoundError:
            return 0

    def expected_energy_j(self, t0_mono: float, t1_mono: float) -> float:
        """Energy of the recorded power changes over [t0, t1] (monotonic s). Units: J."""
        total = 0.0
        for i, (t, p) in enumerate(self.changes):
            end = self.changes[i + 1][0] if i + 1 < len(self.changes) else float("inf")
            lo, hi = max(t, t0_mono), min(end, t1_mono)
            if hi > lo:
                total += p * (hi - lo)
        return total


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 / localhost: ``(cert.pem, key.pem)``."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-bmc")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "bmc-cert.pem", directory / "bmc-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class RedfishServer:
    """A Redfish service on 127.0.0.1 (see the module docstring). Use as a context manager."""

    def __init__(
        self,
        directory: Path,
        *,
        power_w: float = 350.0,
        schema: str = "Power",
        tls: bool = False,
        user: str = "admin",
        password: str = "s3cret-Passw0rd",
        chassis: str = "1",
    ) -> None:
        self.power_w = power_w
        self.schema = schema
        self.user, self.password = user, password
        self.chassis = chassis
        self.requests: list[str] = []
        self.fail = False
        self.cafile: Path | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                server.requests.append(self.path)
                want = (
                    "Basic "
                    + base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
                )
                if self.headers.get("Authorization") != want:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="Redfish"')
                    self.end_headers()
                    return
                doc = None if server.fail else server.resource(self.path.rstrip("/"))
                if doc is None:
                    self.send_response(404 if not server.fail else 503)
                    self.end_headers()
                    return
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            cert, key = self_signed_cert(Path(directory))
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cert, key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.cafile = cert
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def resource(self, path: str) -> dict[str, Any] | None:
        c = f"/redfish/v1/Chassis/{self.chassis}"
        if path == "/redfish/v1/Chassis":
            return {"Members": [{"@odata.id": "/redfish/v1/Chassis/Enclosure"}, {"@odata.id": c}],
                    "Members@odata.count": 2}  # fmt: skip
        if path == "/redfish/v1/Chassis/Enclosure":
            return {"Id": "Enclosure", "ChassisType": "Enclosure"}  # no power here
        if path == c:
            doc: dict[str, Any] = {"Id": self.chassis, "ChassisType": "RackMount"}
            link = {"Power": "Power", "EnvironmentMetrics": "EnvironmentMetrics",
                    "PowerSubsystem": "PowerSubsystem"}[self.schema]  # fmt: skip
            doc[link] = {"@odata.id": f"{c}/{link}"}
            return doc
        if path == f"{c}/Power" and self.schema == "Power":
            return {"PowerControl": [{"MemberId": "0", "PowerConsumedWatts": self.power_w}]}
        if path == f"{c}/EnvironmentMetrics" and self.schema == "EnvironmentMetrics":
            return {"PowerWatts": {"Reading": self.power_w}, "EnergykWh": {"Reading": 1234.5}}
        if self.schema == "PowerSubsystem":
            ps = f"{c}/PowerSubsystem"
            if path == ps:
                return {"PowerSupplies": {"@odata.id": f"{ps}/PowerSupplies"}}
            if path == f"{ps}/PowerSupplies":
                return {"Members": [{"@odata.id": f"{ps}/PowerSupplies/{i}"} for i in (0, 1)]}
            for i in (0, 1):
                if path == f"{ps}/PowerSupplies/{i}":
                    return {"Metrics": {"@odata.id": f"{ps}/PowerSupplies/{i}/Metrics"}}
                if path == f"{ps}/PowerSupplies/{i}/Metrics":
                    return {"InputPowerWatts": {"Reading": self.power_w / 2}}
        return None

    def __enter__(self) -> RedfishServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
