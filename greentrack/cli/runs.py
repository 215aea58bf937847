"""Commands over runs: runs, show, run, detect, sync, db."""

from __future__ import annotations

import csv
import io
import sys
from typing import Any

import click

from greentrack.cli.app import db_option, echo_json, format_option, main, translate_errors
from greentrack.cli.options import intensity_options
from greentrack.config import INTERVAL_RANGE_S
from greentrack.meters.nodepower import node_vs_components
from greentrack.units import format_co2e, format_energy, format_sig


def _db(db_url: str | None) -> str:
    from greentrack.config import load_config

    return db_url or load_config().db_url


CSV_COLUMNS = (
    "id",
    "project",
    "name",
    "status",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_j",
    "energy_kwh",
    "methods",
    "co2e_g",
    "region",
)


def _methods(obj: dict[str, Any]) -> str:
    from greentrack.report.model import methods_label

    return methods_label(obj) or "-"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


@main.command("runs")
@click.option("--project", help="Only runs of this project.")
@click.option(
    "--status",
    type=click.Choice(["running", "finished", "failed", "interrupted", "crashed"]),
    help="Only runs with this status.",
)
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag.")
@click.option("--since", metavar="WHEN", help="Started since: 7d, 12h, 30m or an ISO date.")
@click.option(
    "--sort",
    type=click.Choice(["started", "energy", "duration", "co2e", "name", "project"]),
    default="started",
    show_default=True,
)
@click.option("--asc", is_flag=True, help="Ascending order (default: descending).")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    help="At most this many runs (1 or more).",
)
@format_option("table", "csv", "json")
@db_option
@translate_errors
def runs_cmd(project, status, tags, since, sort, asc, limit, fmt, db_url) -> None:
    """List recent runs, newest first.

    \b
    Example:
      greentrack runs --project cifar --since 7d --format json
    """
    from greentrack.cli.filters import parse_tags
    from greentrack.store import queries
    from greentrack.timefmt import parse_since

    conn = queries.open_store(_db(db_url))
    try:
        rows = queries.list_runs(
            conn,
            project=project,
            status=status,
            tags=parse_tags(tags),
            since=parse_since(since) if since else None,
            sort=sort,
            descending=not asc,
            limit=limit,
        )
        objs = queries.run_objects(conn, rows)
        filters = _filters_text(project, status, tags, since)
        store_empty = not objs and not queries.list_runs(conn, limit=1)
    finally:
        conn.close()
    if fmt == "json":
        echo_json(objs)
        return
    headers = [
        "id",
        "project",
        "name",
        "status",
        "started (UTC)",
        "duration",
        "energy",
        "method",
        "CO2e",
        "region",
    ]
    table = [
        [
            o["id"][:8],
            o["project"],
            o["name"],
            o["status"],
            (o["started_at"] or "")[:19].replace("T", " "),
            f"{o['duration_s']:.1f} s" if o["duration_s"] is not None else "-",
            format_energy(o["energy_j"]),
            _methods(o),
            format_co2e(o["co2e_g"]),
            o["region"] or "-",
        ]
        for o in objs
    ]
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_COLUMNS)
        for o in objs:
            w.writerow([_methods(o) if c == "methods" else o[c] for c in CSV_COLUMNS])
        click.echo(buf.getvalue(), nl=False)
        return
    if table:
        click.echo(_table(headers, table))
    elif store_empty or not filters:
        click.echo("no runs yet: try `greentrack run -- CMD`")
    else:
        click.echo(f"no runs match {filters} (the store has runs: `greentrack runs` lists them)")


def _filters_text(
    project: str | None, status: str | None, tags: tuple[str, ...], since: str | None
) -> str:
    """The filters of ``runs`` as the user typed them: ``--project x --since 0s``."""
    parts = [f"--project {project}"] if project else []
    parts += [f"--status {status}"] if status else []
    parts += [f"--tag {t}" for t in tags]
    parts += [f"--since {since}"] if since else []
    return " ".join(parts)


@main.command("show")
@click.argument("run_id", metavar="RUN")
@format_option("table", "json")
@db_option
@translate_errors
def show_cmd(run_id, fmt, db_url) -> None:
    """Show one run (by unique id prefix): components with methods, phases, metrics, params.

    \b
    Example:
      greentrack show 3f2a --format json
    """
    from greentrack.store import queries

    conn = queries.open_store(_db(db_url))
    try:
        obj = queries.get_run(conn, run_id)
    finally:
        conn.close()
    if fmt == "json":
        echo_json(obj)
        return
    click.echo(render_run(obj))


def _embodied_lines(o: dict[str, Any]) -> list[str]:
    """Embodied emissions (schema 0004), operational + embodied = total, and the rows used."""
    if o.get("embodied_g") is None:
        return []
    emb = o.get("embodied") or {}
    out = [f"  embodied {format_co2e(o['embodied_g'])} CO2e  ({emb.get('method', 'SCI M')})"]
    for d in emb.get("devices") or []:
        life = f"{d['lifetime_years']:g} y" + (
            f" x {d['utilisation']:g} in use" if d.get("utilisation", 1) != 1 else ""
        )
        share = f", share {d['share']:g}" if d.get("share", 1) != 1 else ""
        out.append(
            f"    {d['count']:g} x {d['row']}: {format_co2e(d['embodied_g'])}  "
            f"(TE {d['te_kg_each']:g} kg each, {life}{share}; {d['source']}; {d['scope']})"
        )
    if emb.get("missing"):
        note = "not counted (no embodied figure for this model; add one with [embodied.kg])"
        out.append(f"    {note}: {', '.join(emb['missing'])}")
    if o.get("total_co2e_g") is not None:
        out.append(
            f"  total {format_co2e(o['total_co2e_g'])} CO2e = operational "
            f"{format_co2e(o['co2e_g'])} + embodied {format_co2e(o['embodied_g'])}"
        )
    return out


_CO2E_OF = {  # runs.co2e_basis -> what the CO2e line says it is of
    "node": " of the node's energy",
    "node+components": " of the nodes' energy where a BMC measured it, else the components'",
}


def render_run(o: dict[str, Any]) -> str:
    """Human view of a run object."""
    out = [
        f"run {o['id']}",
        f"  {o['project']}/{o['name']}  status: {o['status']}"
        + (f"  ({o['error']})" if o.get("error") else ""),
        f"  started {o['started_at']}  ended {o['ended_at'] or '-'}  "
        f"duration {o['duration_s'] or 0:.1f} s  host {o.get('host') or '-'}",
        f"  energy {format_energy(o['energy_j'])} ({format_sig(o['energy_kwh'])} kWh, device)"
        + (
            f"; x PUE {o['pue']:g} = {format_sig(o['facility_energy_kwh'])} kWh"
            if o["pue"] != 1
            else ""
        ),
        "  components:",
    ]
    for c in o["components"]:
        where = f" rank {c['rank']}@{c['host']}" if o.get("world_size", 1) > 1 else ""
        out.append(
            f"    {c['device']:<22} {format_energy(c['energy_j']):>12}  [{c['method']}]{where}"
        )
        if c.get("note"):  # every assumption behind this figure (components.note)
            out.append(f"      note: {c['note']}")
        elif c.get("method") == "estimated":
            out.append("      note: none stored (recorded before schema 0003)")
    if o.get("node_energy_j") is not None:  # the node's BMC: beside the components
        out.append(f"  {node_vs_components(o['node_energy_j'], o['energy_j'])}")
        for c in o.get("node_power") or []:
            where = f" rank {c['rank']}@{c['host']}" if o.get("world_size", 1) > 1 else ""
            out.append(
                f"    {c['device']:<22} {format_energy(c['energy_j']):>12}  [{c['method']}]{where}"
            )
            if c.get("note"):
                out.append(f"      note: {c['note']}")
    if o.get("world_size", 1) > 1 and o.get("processes"):
        out.append(f"  ranks ({len(o['processes'])} of {o['world_size']} joined):")
        for p in o["processes"]:
            note = f"  {p['note']}" if p.get("note") else ""
            out.append(
                f"    rank {p['rank']}@{p['host'] or '?':<16} "
                f"{format_energy(p['energy_j']):>12}{note}"
            )
    if len(o.get("nodes") or ()) > 1:
        out.append("  per node:")
        for n in o["nodes"]:
            ranks = ",".join(str(r) for r in n["ranks"])
            out.append(f"    {n['host']:<22} {format_energy(n['energy_j']):>12}  ranks {ranks}")
    if o.get("co2e_g") is not None:
        src = o.get("intensity_source") or {}
        of = _CO2E_OF.get(o.get("co2e_basis") or "", "")
        out.append(
            f"  CO2e{of} {format_co2e(o['co2e_g'])}  (region {o['region']}; {src.get('name')} "
            f"{src.get('zone')} {src.get('kind')} {src.get('period')}"
            + (f"; {src['detail']}" if src.get("detail") else "")
            + ")"
        )
        if o.get("co2e_g_annual_average") is not None:
            out.append(
                "  CO2e at the static annual average: " + format_co2e(o["co2e_g_annual_average"])
            )
    out.extend(_embodied_lines(o))
    fc = o.get("forecast")
    if fc and fc.get("predicted_energy_j") is not None:
        out.append(
            f"  progress {fc['fraction']:.0%}: predicted final energy "
            f"{format_energy(fc['predicted_energy_j'])}"
            + (
                f", {format_co2e(fc['predicted_co2e_g'])} CO2e"
                if fc.get("predicted_co2e_g")
                else ""
            )
        )
    if o["phase_totals"]:
        out.append("  phases:")
        other: dict[str, dict[str, int]] = {}  # windows whose energy has another method
        for ph in o.get("phases") or []:
            if ph.get("method"):
                per = other.setdefault(ph["path"], {})
                per[ph["method"]] = per.get(ph["method"], 0) + 1
        for p in o["phase_totals"]:
            how = "".join(
                f"  ({n} window{'s' if n > 1 else ''} from {m} power)"
                if m == "sampled"
                else f"  ({n} window{'s' if n > 1 else ''}: {m})"
                for m, n in sorted(other.get(p["name"], {}).items())
            )
            out.append(
                f"    {p['name']:<22} x{p['count']:<5} {format_sig(p['duration_s']):>10} s "
                f"{format_energy(p['energy_j']):>12}{how}"
            )
    if o["metrics"]:
        out.append("  metrics: " + ", ".join(f"{k}={v:g}" for k, v in o["metrics"].items()))
    if o["params"]:
        out.append("  params: " + ", ".join(f"{k}={v}" for k, v in o["params"].items()))
    if o["tags"]:
        out.append("  tags: " + ", ".join(f"{k}={v}" for k, v in o["tags"].items()))
    if isinstance(o.get("plan"), dict):
        out += render_plan(o["plan"])
    for e in o.get("events", []):
        if e["source"] == "rank" and o.get("world_size", 1) > 1:
            continue  # a rank joining: listed under "ranks" above
        out.append(f"  {e['level']}: [{e['source']}] {e['message']}")
    return "\n".join(out)


_STRATEGIES = {
    "run_now": "Run now",
    "flexible_start": "Flexible Start",
    "pause_resume": "Pause & Resume",
}


def render_plan(plan: dict[str, Any]) -> list[str]:
    """The lines of ``show`` for a run's stored schedule plan: the decision, its segments, the
    expected emissions and their source, every re-plan, and the pauses applied to the job."""
    strategy = str(plan.get("strategy") or "plan")
    head = f"  plan: {_STRATEGIES.get(strategy, strategy)}"
    if plan.get("start"):
        head += f", start {plan['start']}"
    if plan.get("end"):
        head += f", end {plan['end']}"
    if plan.get("deadline"):
        head += f" (deadline {plan['deadline']})"
    out = [head]
    segments = [g for g in plan.get("segments") or [] if isinstance(g, dict)]
    if len(segments) > 1:
        for i, g in enumerate(segments, 1):
            out.append(f"    segment {i}: {g.get('start')} .. {g.get('end')}")
    if plan.get("expected_co2e_g") is not None:
        line = f"    expected {format_co2e(plan['expected_co2e_g'])} CO2e"
        if plan.get("run_now_co2e_g") is not None:
            line += f", {format_co2e(plan['run_now_co2e_g'])} if run now"
        if plan.get("saving_pct") is not None:
            line += f" (saving {format_sig(plan['saving_pct'])} %)"
        src = plan.get("source") or {}
        label = " ".join(str(src[k]) for k in ("name", "zone", "kind", "period") if src.get(k))
        out.append(line + (f"; intensity {label}" if label else ""))
    if plan.get("pauses"):
        mode = f", pause mode {plan['pause_mode']}" if plan.get("pause_mode") else ""
        out.append(f"    pauses planned: {plan['pauses']}{mode}")
    replans = [r for r in plan.get("replans") or [] if isinstance(r, dict)]
    for r in replans:
        why = r.get("reason") or r.get("note") or "re-planned"
        where = " during a pause" if r.get("during") == "pause" else " before the start"
        line = f"    re-plan at {r.get('at')}{where}: {why}"
        if r.get("new_start"):
            line += f" (start {r.get('start')} -> {r['new_start']})"
        if r.get("done_s") is not None:
            line += f" (after {format_sig(r['done_s'])} s of work)"
        new_segments = [g for g in r.get("segments") or [] if isinstance(g, dict)]
        if new_segments:
            line += "; new segments " + ", ".join(
                f"{g.get('start')} .. {g.get('end')}" for g in new_segments
            )
        out.append(line)
    if not replans and "replans" in plan:
        out.append("    re-plans: none")
    applied = [a for a in plan.get("applied") or [] if isinstance(a, dict)]
    if applied:
        events = ", ".join(f"{a.get('event')} at {a.get('at')}" for a in applied)
        out.append(f"    applied: {events}")
    elif plan.get("pauses"):
        out.append("    applied: no pause recorded")
    for w in plan.get("warnings") or []:
        out.append(f"    plan note: {w}")
    return out


@main.command("detect")
@format_option("table", "json")
@translate_errors
def detect_cmd(fmt) -> None:
    """Which meters work here, and why the others don't (with the fix).

    \b
    Example:
      greentrack detect
    """
    from dataclasses import asdict

    from greentrack.config import load_config
    from greentrack.meters import detect

    statuses = detect(load_config())
    if fmt == "json":
        echo_json([asdict(s) for s in statuses])
        return
    for s in statuses:
        mark = "yes" if s.available else "no "
        devices = f" ({', '.join(s.devices)})" if s.devices else ""
        method = f" [{s.method}]" if s.method else ""
        click.echo(f"{mark} {s.name:<12}{method}{devices}: {s.reason}")


@main.command(
    "run",
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
)
@click.option("--project", help="Project name.")
@click.option("--name", help="Run name (default: the command's name).")
@click.option("--region", help="Grid zone for CO2e (ES, US-CAL-CISO, gcp:europe-west1).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A parameter.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A tag.")
@click.option(
    "--interval",
    "interval_s",
    type=click.FloatRange(*INTERVAL_RANGE_S),
    metavar="SECONDS",
    help="Sampling interval in seconds, 0.01 to 3600 (default 1, or GREENTRACK_INTERVAL_S).",
)
@click.option(
    "--cpu-share",
    type=click.Choice(["machine", "process"]),
    help="What the CPU/RAM estimates count: the machine's load, or this command's processes "
    "(default: machine, or GREENTRACK_CPU_SHARE).",
)
@click.option(
    "--prometheus-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve the run's live figures on http://127.0.0.1:PORT/metrics (prometheus-client; "
    "default: GREENTRACK_PROMETHEUS_PORT).",
)
@intensity_options(csv_help="Account the run on intensity from CSV file(s) covering its time.")
@db_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@translate_errors
def run_cmd(
    project,
    name,
    region,
    params,
    tags,
    interval_s,
    cpu_share,
    prometheus_port,
    intensity,
    db_url,
    command,
) -> None:
    """Track any command; exits with the command's exit code.

    Bad input (an unknown --region, a CSV for another zone or not covering now) exits 1 before
    the command starts. At the end, one line on stderr: run id, energy, method, CO2e.

    \b
    Example:
      greentrack run --project cifar -- python train.py --epochs 3
      greentrack run --region ES -- python train.py
    """
    from greentrack.cli.filters import parse_tags
    from greentrack.runner import run_command

    code = run_command(
        list(command),
        project=project,
        name=name,
        params=dict(parse_tags(params)),
        tags=dict(parse_tags(tags)),
        region=region,
        db_url=db_url,
        interval_s=interval_s,
        cpu_share=cpu_share,
        source=intensity.source,
        csv=intensity.csv_files,
        csv_options=intensity.csv_options(),
        integrations={"prometheus_port": prometheus_port} if prometheus_port else None,
    )
    sys.exit(code)


@main.command("sync")
@db_option
@translate_errors
def sync_cmd(db_url) -> None:
    """Write spooled readings to the store and mark dead runs as crashed.

    \b
    Example:
      greentrack sync --db postgresql+psycopg://me@db/greentrack
    """
    from greentrack.config import load_config
    from greentrack.store.ops import sync

    result = sync(load_config(), db_url)
    click.echo(
        f"wrote {result.written} spooled checkpoint(s) from {result.files} file(s); "
        f"{len(result.crashed)} run(s) marked crashed"
    )
    for line in result.kept:  # files holding lines that were not written: never deleted
        click.echo(f"error: {line}", err=True)
    if result.kept:
        sys.exit(1)


@main.group("db")
def db_group() -> None:
    """Database schema: upgrade, current.

    \b
    Example:
      greentrack db upgrade
    """


@db_group.command("upgrade")
@db_option
@translate_errors
def db_upgrade_cmd(db_url) -> None:
    """Create or migrate the store's schema to the latest revision.

    \b
    Example:
      greentrack db upgrade --db postgresql+psycopg://me@localhost/greentrack
    """
    from greentrack.store.ops import db_upgrade

    state = db_upgrade(_db(db_url))
    click.echo(f"{state.url}: schema at {state.revision} (head {state.head})")


@db_group.command("current")
@db_option
@translate_errors
def db_current_cmd(db_url) -> None:
    """Print the store's schema revision and whether it is current.

    \b
    Example:
      greentrack db current
    """
    from greentrack.store.ops import db_current

    state = db_current(_db(db_url))
    if state.damage:  # never "up to date": the file itself is broken
        raise click.ClickException(
            f"{state.url}: the SQLite file is damaged ({state.damage}); restore a backup, or "
            "salvage it with `sqlite3 FILE .recover | sqlite3 NEW.db`"
        )
    verdict = "up to date" if state.at_head else "run `greentrack db upgrade`"
    click.echo(f"{state.url}: schema at {state.revision or 'none'} (head {state.head}): {verdict}")
