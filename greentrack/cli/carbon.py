"""Commands: ``intensity`` (grid intensity of a zone), ``whatif`` (a run elsewhere or else-when).

Thin: parse, call one library function (:func:`greentrack.carbon.lookup.lookup_intensity`,
:func:`greentrack.carbon.whatif.whatif_run`), print. Heavy modules are imported inside.
"""

from __future__ import annotations

from typing import Any

import click

from greentrack.cli.app import db_option, echo_json, err, format_option, main, translate_errors

_CSV_HELP = (
    "CSV file(s) with hourly-or-finer intensity (Electricity Maps export, EIA-930, or any layout "
    "with --time-column/--value-column). Repeat for several files (e.g. one per year)."
)


def _csv_options(
    tz: str, signal: str, time_column: str | None, value_column: str | None, max_gap: int
) -> dict[str, Any]:
    opts: dict[str, Any] = {"tz": tz, "signal": signal, "max_gap_steps": max_gap}
    if time_column:
        opts["time_column"] = time_column
    if value_column:
        opts["value_column"] = value_column
    return opts


@main.command("intensity")
@click.argument("zone", required=False)
@click.option("--at", "at", metavar="TIME", help="Instant, ISO 8601 (naive = UTC). Default: now.")
@click.option("--csv", "csv_files", multiple=True, type=click.Path(dir_okay=False), help=_CSV_HELP)
@click.option(
    "--source",
    metavar="NAME",
    help="static | csv | electricitymaps | watttime | uk (default: csv with --csv, else the "
    "configured provider).",
)
@click.option("--forecast", metavar="DURATION", help="Print the forecast for e.g. 24h, 90m, 2d.")
@click.option(
    "--signal",
    type=click.Choice(["direct", "lca"]),
    default="direct",
    show_default=True,
    help="Electricity Maps CSV column: direct (combustion) or lca (life cycle).",
)
@click.option("--tz", default="UTC", show_default=True, help="Time zone of naive CSV timestamps.")
@click.option("--time-column", metavar="NAME", help="CSV timestamp column (other layouts).")
@click.option("--value-column", metavar="NAME", help="CSV intensity column, g/kWh.")
@click.option(
    "--max-gap",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Longest run of missing CSV steps to fill by linear interpolation.",
)
@format_option("table", "json")
@translate_errors
def intensity(
    zone: str | None,
    at: str | None,
    csv_files: tuple[str, ...],
    source: str | None,
    forecast: str | None,
    signal: str,
    tz: str,
    time_column: str | None,
    value_column: str | None,
    max_gap: int,
    fmt: str,
) -> None:
    """Show the grid carbon intensity of a zone (g CO2e/kWh), now, at a time, or forecast.

    ZONE: ISO country (ES, ESP), Electricity Maps zone (US-CAL-CISO, SE-SE3), US state
    (US-CA), provider:region (gcp:europe-west1). Default: the CSV's zone, else
    GREENTRACK_REGION / config file / world average.

    \b
    Example:
      greentrack intensity ES
      greentrack intensity ES --csv ES_2022_hourly.csv --at 2022-03-01T19:00Z --format json
      greentrack intensity GB --source uk --forecast 24h
    """
    from greentrack.carbon.lookup import lookup_intensity
    from greentrack.timefmt import parse_duration, parse_time

    result = lookup_intensity(
        zone,
        at_s=parse_time(at) if at else None,
        source=source,
        csv=list(csv_files) or None,
        forecast_s=parse_duration(forecast, "--forecast", positive=True) if forecast else None,
        **(_csv_options(tz, signal, time_column, value_column, max_gap) if csv_files else {}),
    )
    for w in result.warnings:
        err(f"Warning: {w}")
    data = result.to_dict()
    if fmt == "json":
        echo_json(data)
        return
    src = data["source"]
    if result.point is not None:
        click.echo(
            f"{data['zone']}  {data['g_per_kwh']:.1f} g CO2e/kWh ({data['kind']})  at {data['at']}"
        )
    else:
        click.echo(
            f"{data['zone']} forecast ({data['kind']}, g CO2e/kWh, step {data['step_s']:g} s)"
        )
        for p in data["points"]:
            click.echo(f"  {p['at']}  {p['g_per_kwh']:.1f}")
    click.echo(f"source: {src['name']} {src['zone']} {src['kind']} {src['period']}".rstrip())
    if src["detail"]:
        click.echo(f"detail: {src['detail']}")


@main.command("whatif")
@click.argument("run")
@click.option("--region", metavar="ZONE", help="Zone to re-account the run in (default: its own).")
@click.option("--start", metavar="TIME", help="New start, ISO 8601 (naive = UTC).")
@click.option("--csv", "csv_files", multiple=True, type=click.Path(dir_okay=False), help=_CSV_HELP)
@click.option("--source", metavar="NAME", help="Intensity source (default: csv with --csv).")
@db_option
@format_option("table", "json")
@translate_errors
def whatif_cmd(
    run: str,
    region: str | None,
    start: str | None,
    csv_files: tuple[str, ...],
    source: str | None,
    db_url: str | None,
    fmt: str,
) -> None:
    """Recompute a stored run's emissions for another region and/or start time.

    The run's measured energy profile is replayed against the intensity of --region over the
    run's duration shifted to --start.

    \b
    Example:
      greentrack whatif 3f2a --region FR
      greentrack whatif 3f2a --start 2022-03-01T02:00Z --csv ES_2022_hourly.csv --format json
    """
    from greentrack.carbon.whatif import whatif_run
    from greentrack.timefmt import parse_time

    result = whatif_run(
        db_url,
        run,
        region=region,
        start_s=parse_time(start) if start else None,
        source=source,
        csv=list(csv_files) or None,
    )
    for w in result.warnings:
        err(f"Warning: {w}")
    data = result.to_dict()
    if fmt == "json":
        echo_json(data)
        return
    original = data["original_co2e_g"]
    click.echo(f"run {data['run']} in {data['region']} starting {data['start']}")
    click.echo(f"  what-if:  {data['co2e_g']:.2f} g CO2e")
    if original is not None:
        click.echo(f"  original: {original:.2f} g CO2e")
    src = data["source"]
    click.echo(f"source: {src['name']} {src['zone']} {src['kind']} {src['period']}".rstrip())
