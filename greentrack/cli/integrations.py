"""Commands: exporter (a store's recent runs on a Prometheus ``/metrics`` endpoint)."""

from __future__ import annotations

import click

from greentrack.cli.app import db_option, main, translate_errors


@main.command("exporter")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=9465, show_default=True, help="TCP port."
)
@click.option(
    "--addr",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind (0.0.0.0: every interface, for a remote Prometheus).",
)
@click.option(
    "--max-runs",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="Most runs served, newest first (bounds the label cardinality).",
)
@click.option(
    "--since",
    default="24h",
    show_default=True,
    metavar="WHEN",
    help="Only runs started since (7d, 12h); running ones always.",
)
@db_option
@translate_errors
def exporter_cmd(port, addr, max_runs, since, db_url) -> None:
    """Serve a store's recent runs as Prometheus metrics on /metrics (until Ctrl-C).

    Needs prometheus-client: pip install 'greentrack[prometheus]'. Series per metric: at most
    --max-runs runs × their devices. The store is read at each scrape.

    \b
    Example:
      greentrack exporter --db postgresql+psycopg://gt@db:5432/gt --port 9465 --addr 0.0.0.0
    """
    import threading
    from datetime import UTC, datetime

    from greentrack.integrations.prometheus import serve_store
    from greentrack.timefmt import parse_since

    start = parse_since(since)
    since_s = max(0.0, (datetime.now(UTC).replace(tzinfo=None) - start).total_seconds())
    server = serve_store(db_url, port, addr=addr, max_runs=max_runs, since_s=since_s)
    click.echo(f"serving http://{addr}:{port}/metrics (Ctrl-C to stop)", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
