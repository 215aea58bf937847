"""Whole-node power from the BMC, beside the components: a tracked job on a node with Redfish.

On a server, point greentrack at its BMC and every run records the node's wall power beside the
components it meters, with its CO2e of the node's energy::

    GREENTRACK_REDFISH_URL=https://10.0.0.5 GREENTRACK_REDFISH_USER=monitor \\
    GREENTRACK_REDFISH_PASSWORD=... python examples/node_power.py --bmc-url https://10.0.0.5

(or ``[node] redfish_url = ...`` in config.toml; IPMI DCMI is used on its own where
``ipmitool`` and ``/dev/ipmi0`` exist). Without ``--bmc-url`` this script starts a *simulated*
Redfish BMC on 127.0.0.1 reporting a constant 350 W, so that the line can be seen anywhere::

    python examples/node_power.py
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import greentrack as gt

SIMULATED_W = 350.0


class _SimulatedBmc(BaseHTTPRequestHandler):
    """The three Redfish resources greentrack reads: the chassis list, a chassis, its Power."""

    def log_message(self, *args: Any) -> None:
        return None

    def do_GET(self) -> None:
        docs = {
            "/redfish/v1/Chassis": {"Members": [{"@odata.id": "/redfish/v1/Chassis/1"}]},
            "/redfish/v1/Chassis/1": {
                "Id": "1",
                "Power": {"@odata.id": "/redfish/v1/Chassis/1/Power"},
            },
            "/redfish/v1/Chassis/1/Power": {"PowerControl": [{"PowerConsumedWatts": SIMULATED_W}]},
        }
        doc = docs.get(self.path.rstrip("/"))
        body = json.dumps(doc).encode()
        self.send_response(200 if doc else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bmc-url", help="your BMC's Redfish address (default: a simulated one)")
    ap.add_argument("--seconds", type=float, default=3.0, help="length of the tracked job")
    args = ap.parse_args()
    server = None
    if args.bmc_url:
        os.environ["GREENTRACK_REDFISH_URL"] = args.bmc_url
    else:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _SimulatedBmc)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        os.environ["GREENTRACK_REDFISH_URL"] = f"http://127.0.0.1:{server.server_address[1]}"
        print(f"simulated BMC at {os.environ['GREENTRACK_REDFISH_URL']}: {SIMULATED_W:g} W")
    os.environ.setdefault("GREENTRACK_NODE_POLL_S", "0.2")
    with gt.track("node-power", project="examples", region="FR") as run:
        t, x = time.time(), 0.0
        while time.time() - t < args.seconds:  # some CPU work
            x += 1.0
    print(run.summary())
    if server is not None:
        server.shutdown()


if __name__ == "__main__":
    main()
