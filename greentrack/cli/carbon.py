"""Commands: ``intensity`` (grid intensity of a zone), ``whatif`` (a run elsewhere or else-when).

Thin: parse, call one library function (:func:`greentrack.carbon.lookup.lookup_intensity`,
:func:`greentrack.carbon.whatif.whatif_run`), print. Heavy modules are imported inside.
"""

from __future__ import annotations

import click

from greentrack.cli.app import db_option, echo_json, err, format_option, main, translate_errors
from greentrack.cli.options import IntensityInput, intensity_options
from greentrack.units import format_co2e


@main.command("intensity")
@click.argument("zone", required=False)
@click.option("--at", "at", metavar="TIME", help="Instant, ISO 8601 (naive = UTC). Default: now.")
@click.option("--forecast", metavar="DURATION", help="Print the forecast for e.g. 24h, 90m, 2d.")
@intensity_options()
@format_option("table", "json")
@translate_errors
def intensity(
    zone: str | None,
    at: str | None,
    forecast: str | None,
    intensity: IntensityInput,
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
        source=intensity.source,
        csv=intensity.csv_files,
        forecast_s=parse_duration(forecast, "--forecast", positive=True) if forecast else None,
        **intensity.csv_options(),
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
@intensity_options()
@db_option
@format_option("table", "json")
@translate_errors
def whatif_cmd(
    run: str,
    region: str | None,
    start: str | None,
    intensity: IntensityInput,
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
        source=intensity.source,
        csv=intensity.csv_files,
        csv_options=intensity.csv_options(),
    )
    for w in result.warnings:
        err(f"Warning: {w}")
    data = result.to_dict()
    if fmt == "json":
        echo_json(data)
        return
    original = data["original_co2e_g"]
    click.echo(f"run {data['run']} in {data['region']} starting {data['start']}")
    click.echo(f"  what-if:  {format_co2e(data['co2e_g'])} CO2e")
    if original is not None:
        click.echo(f"  original: {format_co2e(original)} CO2e")
        click.echo(f"  {data['saving']}")
    src = data["source"]
    click.echo(f"source: {src['name']} {src['zone']} {src['kind']} {src['period']}".rstrip())
