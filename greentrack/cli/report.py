"""Commands: report (the price tag), plot, dashboard, export."""

from __future__ import annotations

import click

from greentrack.cli.app import db_option, main, translate_errors
from greentrack.report.render import FORMATS


@main.command("report")
@click.argument("run_ids", nargs=-1, metavar="[RUN]...")
@click.option("--project", help="Every run of this project (the whole development).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag.")
@click.option("--since", metavar="WHEN", help="Only runs started since: 7d, 12h or an ISO date.")
@click.option(
    "--final",
    "final",
    multiple=True,
    metavar="RUN",
    help="A final run (repeatable); runs tagged final=true are final too. The rest is tuning.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="markdown",
    show_default=True,
    help="Output format.",
)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file.")
@click.option("--flops", is_flag=True, help="Show FLOPs (as logged by the runs).")
@click.option("--price-per-kwh", type=float, metavar="PRICE", help="Electricity price per kWh.")
@click.option("--currency", default="EUR", show_default=True, help="Currency of the price.")
@click.option(
    "--seed-key",
    "seed_keys",
    multiple=True,
    metavar="PARAM",
    help="Parameter that only changes the seed [seed] (repeatable).",
)
@click.option("--standalone", is_flag=True, help="LaTeX: a complete document (with bibliography).")
@click.option("--no-plots", is_flag=True, help="HTML: leave the figures out.")
@click.option("--sci", is_flag=True, help="Software Carbon Intensity ((E x I) + M) / R instead.")
@click.option("--per", type=float, metavar="N", help="--sci: R, the functional units (e.g. 1000).")
@click.option("--unit", metavar="UNIT", help="--sci: what R counts (inference, image, token).")
@db_option
@translate_errors
def report_cmd(
    run_ids,
    project,
    tags,
    since,
    final,
    fmt,
    output,
    flops,
    price_per_kwh,
    currency,
    seed_keys,
    standalone,
    no_plots,
    sci,
    per,
    unit,
    db_url,
) -> None:
    """The price tag of runs: hardware, time, energy, CO2e, FLOPs, each with its method.

    With RUN ids, reports those runs; with --project (and --tag/--since), every matching run and
    the share spent on tuning; with neither, the latest run. LaTeX writes FILE.bib beside -o FILE.

    \b
    Example:
      greentrack report 3f2a
      greentrack report --project cifar --format latex -o pricetag.tex
      greentrack report 3f2a 9b1c --format html -o report.html
      greentrack report --project cifar --final 3f2a --price-per-kwh 0.25 --currency EUR
      greentrack report 3f2a --sci --per 1000 --unit inference
    """
    from greentrack.cli.filters import parse_tags

    if sci:
        from greentrack.report.sci import sci_from_store

        found = sci_from_store(
            run_ids, db_url=db_url, project=project, tags=parse_tags(tags), since=since,
            per=per, unit=unit, final=final,
        )
        if fmt == "json":
            from greentrack.jsonout import dumps

            click.echo(dumps({"sci": found.rows}))
        else:
            click.echo(found.text, nl=False)
        return
    from greentrack.report.pricetag import make_report

    result = make_report(
        run_ids,
        db_url=db_url,
        project=project,
        tags=parse_tags(tags),
        since=since,
        fmt=fmt,
        output=output,
        final=final,
        seed_keys=seed_keys or ("seed",),
        price_per_kwh=price_per_kwh,
        currency=currency,
        flops=flops,
        standalone=standalone,
        plots=not no_plots,
    )
    if output:
        click.echo("wrote " + ", ".join(str(p) for p in result.files))
    else:
        click.echo(result.text, nl=False)


@main.command("plot")
@click.argument("run_ids", nargs=-1, metavar="[RUN]...")
@click.option(
    "--kind",
    type=click.Choice(["power", "energy", "intensity", "pareto", "schedule"]),
    default="power",
    show_default=True,
    help="What to draw.",
)
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False),
    help="Image file: .svg, .png or .pdf.",
)
@click.option("--project", help="pareto: every run of this project.")
@click.option("--metric", help="pareto: the metric on the y axis [accuracy-like].")
@click.option("--lower-is-better", is_flag=True, help="pareto: the metric is a loss or error.")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False),
    help="schedule: a plan from `greentrack schedule --format json`.",
)
@click.option(
    "--csv",
    "csv_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="schedule: the intensity CSV file(s) the plan was made on.",
)
@click.option("--region", help="schedule: the zone (default: the plan's).")
@click.option("--source", help="schedule: the intensity source (default: the plan's).")
@click.option("--title", help="Figure title.")
@db_option
@translate_errors
def plot_cmd(
    run_ids,
    kind,
    output,
    project,
    metric,
    lower_is_better,
    plan_file,
    csv_files,
    region,
    source,
    title,
    db_url,
) -> None:
    """Draw a figure: power, energy or intensity of a run; accuracy vs energy; a schedule plan.

    \b
    Example:
      greentrack plot 3f2a --kind power -o power.svg
      greentrack plot --project cifar --kind pareto --metric accuracy -o pareto.png
      greentrack plot --kind schedule --plan plan.json --csv ES_2022.csv -o plan.svg
    """
    from greentrack.report.figures import make_plot

    path = make_plot(
        kind,
        output,
        run_ids,
        db_url=db_url,
        project=project,
        metric=metric,
        lower_is_better=lower_is_better,
        plan_file=plan_file,
        csv=csv_files,
        region=region,
        source=source,
        title=title,
    )
    click.echo(f"wrote {path}")


@main.command("dashboard")
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the site (index.html, runs/).",
)
@click.option("--project", help="Only this project.")
@click.option(
    "--latest",
    type=click.IntRange(min=0),
    default=100,
    show_default=True,
    help="Runs (newest first) that get their own page.",
)
@click.option("--all", "all_pages", is_flag=True, help="A page for every run.")
@click.option("--title", default="greentrack runs", show_default=True, help="Site title.")
@db_option
@translate_errors
def dashboard_cmd(out_dir, project, latest, all_pages, title, db_url) -> None:
    """Build a static HTML dashboard of the store (no server, no network).

    \b
    Example:
      greentrack dashboard -o site/ && xdg-open site/index.html
      greentrack dashboard -o site/ --project cifar --all
    """
    from greentrack.report.site import build_site

    result = build_site(
        out_dir, db_url=db_url, project=project, latest=latest, all_pages=all_pages, title=title
    )
    click.echo(
        f"wrote {result.index} ({result.runs} runs, {result.pages} run pages) "
        f"in {result.seconds:.1f} s"
    )


@main.command("export")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet", "json"]),
    default=None,
    help="Output format [from the file suffix, else csv].",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="File to write (default: standard output; Parquet needs a file).",
)
@click.option("--project", help="Only runs of this project.")
@click.option("--status", help="Only runs with this status.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="Only runs with this tag.")
@click.option("--since", metavar="WHEN", help="Only runs started since: 7d, 12h or an ISO date.")
@click.option("--samples", "samples_of", metavar="RUN", help="Export this run's samples instead.")
@db_option
@translate_errors
def export_cmd(fmt, output, project, status, tags, since, samples_of, db_url) -> None:
    """Export the runs table (one row per run) or a run's samples: CSV, Parquet, JSON.

    \b
    Example:
      greentrack export --format csv -o runs.csv
      greentrack export --format parquet -o runs.parquet --project cifar
      greentrack export --samples 3f2a -o samples.csv
    """
    from greentrack.report.export import export

    result = export(
        output,
        fmt=fmt,
        db_url=db_url,
        project=project,
        samples_of=samples_of,
        status=status,
        tags=list(tags),
        since=since,
    )
    if result.path is None:
        click.echo(result.text or "", nl=False)
    else:
        click.echo(f"wrote {result.rows} rows to {result.path}", err=True)
