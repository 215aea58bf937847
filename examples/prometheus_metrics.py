"""Serve a tracked run's live energy on a Prometheus /metrics endpoint, and scrape it.

    pip install -e '.[prometheus]'
    python examples/prometheus_metrics.py --seconds 5 --port 9464

While it runs, `curl http://127.0.0.1:9464/metrics` (or a Prometheus scraping that target) sees
greentrack_energy_joules_total, greentrack_power_watts and greentrack_co2e_grams_total. The
example scrapes its own endpoint at the end and prints greentrack's lines.
"""

from __future__ import annotations

import argparse
import socket
import time
import urllib.request

import greentrack as gt


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int, run_id: str, timeout_s: float = 60.0) -> str:
    """The endpoint's text once it shows the run's energy (the endpoint opens at the run's
    first checkpoint, after the store is created: up to seconds for a new store)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
            if "greentrack_power_watts{" in text and run_id in text:
                return text
        except OSError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            return text
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to work")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args()
    port = args.port or free_port()

    with gt.track("prometheus-demo", project="examples", region="FR", checkpoint_s=0.5,
                  prometheus_port=port) as run:  # fmt: skip
        deadline, x = time.monotonic() + args.seconds, 0.0
        while time.monotonic() < deadline:
            x += sum(i * i for i in range(10_000)) * 1e-12  # some CPU work
        run.log(step=1, x=x)
        text = scrape(port, run.id)
    print(f"scraped http://127.0.0.1:{port}/metrics while run {run.id[:8]} ran:")
    for line in text.splitlines():
        if line.startswith("greentrack_"):
            print(" ", line)
    print(run.summary())


if __name__ == "__main__":
    main()
