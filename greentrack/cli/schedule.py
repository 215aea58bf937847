"""``greentrack schedule``: plan a job for low carbon (and run it); ``schedule study``: history.

``schedule`` is a click group with its own callback: ``greentrack schedule [OPTIONS] [-- CMD]``
plans (and, with a command, waits and runs it tracked); ``greentrack schedule study ...`` runs the
study. :class:`_ScheduleGroup` makes both work: when the first word is a subcommand name the group
dispatches to it, otherwise everything is parsed as the plain command (its options, then the
command to run, everything after ``--`` or the first non-option word).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from greentrack.cli.app import db_option, echo_json, format_option, main, translate_errors
from greentrack.cli.options import IntensityInput, intensity_options
from greentrack.scheduling.request import PlanRequest

__all__ = ["schedule_cmd", "study_cmd"]


_SUB = "greentrack.cli.schedule.subcommand"
_CMD_METAVAR = "[-- CMD [ARGS]...]"


class _CommandArgument(click.Argument):
    """The trailing CMD; shown once in the group's usage, not in ``schedule study``'s."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


class _ScheduleGroup(click.Group):
    """A group whose own callback takes a trailing command: ``schedule ... -- CMD``.

    click's own group parsing would let the trailing ``CMD...`` argument swallow ``study ...``
    (or treat ``python`` as an unknown subcommand). Here the raw first word decides: a subcommand
    name dispatches to it (``-- study`` still means a command called study); anything else is
    the plain command.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in self.commands:
            ctx.meta[_SUB] = list(args)
            return click.Command.parse_args(self, ctx, [])  # the group's defaults only
        return click.Command.parse_args(self, ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)
        return [pieces[0], _CMD_METAVAR, *pieces[1:]]

    def invoke(self, ctx: click.Context) -> Any:
        sub = ctx.meta.pop(_SUB, None)
        if sub is None:
            return click.Command.invoke(self, ctx)
        name, *rest = sub
        cmd = self.commands[name]
        ctx.invoked_subcommand = name
        with ctx:
            sub_ctx = cmd.make_context(name, rest, parent=ctx)
            with sub_ctx:
                return sub_ctx.command.invoke(sub_ctx)


def _split_list(values: tuple[str, ...]) -> list[str]:
    return [v.strip() for raw in values for v in raw.split(",") if v.strip()]


@main.group(
    "schedule",
    cls=_ScheduleGroup,
    invoke_without_command=True,
    subcommand_metavar="| study [OPTIONS]",
)
@click.option("--region", help="Grid zone (ES, GB, US-CAL-CISO); default: GREENTRACK_REGION.")
@intensity_options(
    csv_help="Plan against intensity from CSV file(s) (repeatable; e.g. one per year); a "
    "command run on the plan is accounted on the same data.",
    tz_help="IANA time zone of naive times: --at, --deadline and CSV timestamps [UTC].",
)
@click.option("--at", "at", metavar="TIME", help="Submission time, ISO 8601 (default: now).")
@click.option("--duration", metavar="DUR", help="The job's run time: 6h, 90m, 1h30m.")
@click.option("--within", metavar="DUR", help="Slack: the job may start up to DUR late.")
@click.option("--deadline", metavar="TIME", help="Absolute finish time (instead of --within).")
@click.option("--pause-resume", is_flag=True, help="Allow pauses (Pause & Resume).")
@click.option("--min-run", metavar="DUR", help="Pause & Resume: shortest run segment [1h].")
@click.option("--max-pauses", type=click.IntRange(min=0), help="Pause & Resume: most pauses.")
@click.option("--power-w", type=float, help="The job's power in W [1000].")
@click.option("--pause-power-w", type=float, help="Power drawn while paused, in W [0].")
@click.option("--profile-run", metavar="RUN", help="Use the power profile of a stored run.")
@click.option("--project", help="Project of the tracked run (with a command).")
@click.option("--name", help="Name of the tracked run (default: the command's name).")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE", help="A run parameter.")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE", help="A run tag.")
@click.option(
    "--pause-mode",
    type=click.Choice(["stop", "cooperative"]),
    default="stop",
    show_default=True,
    help="How a command pauses: SIGSTOP/SIGCONT, or the job polls run.should_pause().",
)
@click.option(
    "--replan-threshold",
    type=float,
    default=10.0,
    show_default=True,
    help="Re-plan while waiting when a live forecast moves the plan's emissions by more than "
    "this %.",
)
@format_option("table", "json")
@db_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, cls=_CommandArgument)
@translate_errors
def schedule_cmd(
    region: str | None,
    intensity: IntensityInput,
    at: str | None,
    duration: str | None,
    within: str | None,
    deadline: str | None,
    pause_resume: bool,
    min_run: str | None,
    max_pauses: int | None,
    power_w: float | None,
    pause_power_w: float | None,
    profile_run: str | None,
    project: str | None,
    name: str | None,
    params: tuple[str, ...],
    tags: tuple[str, ...],
    pause_mode: str,
    replan_threshold: float,
    fmt: str,
    db_url: str | None,
    command: tuple[str, ...],
) -> None:
    """Plan a job for the least carbon before its deadline, or wait and run CMD then.

    Prints the best start (and pauses with --pause-resume), the expected gCO2e, the gCO2e of
    starting now and the saving, for a 1 kW job unless --power-w or --profile-run is given. With
    `-- CMD`, waits until the start (countdown on stderr; Ctrl-C or SIGTERM cancels) and runs CMD
    tracked with the plan stored on the run, accounted on the plan's intensity source.

    \b
    Example:
      greentrack schedule --csv ES_2022_hourly.csv --at 2022-03-01T08:00Z --duration 6h --within 24h
      greentrack schedule --region GB --source uk --duration 2h --within 12h -- python train.py
      greentrack schedule study --csv ES_2022_hourly.csv --duration 1h,6h,24h --within 24h
    """
    request = PlanRequest(
        duration=duration,
        within=within,
        deadline=deadline,
        at=at,
        strategy="pause_resume" if pause_resume else "flexible_start",
        region=region,
        source=intensity.source,
        csv=intensity.csv_files,
        csv_options=intensity.csv_options(),
        min_run=min_run,
        max_pauses=max_pauses,
        power_w=power_w,
        profile_run=profile_run,
        pause_power_w=pause_power_w or 0.0,
        tz=intensity.tz,
        db_url=db_url,
    )
    if command:
        from greentrack.cli.filters import parse_tags
        from greentrack.scheduling.execute import schedule_command

        code = schedule_command(
            list(command),
            request=request,
            project=project,
            name=name,
            params=dict(parse_tags(params)),
            tags=dict(parse_tags(tags)),
            db_url=db_url,
            pause_mode=pause_mode,
            replan_threshold_pct=replan_threshold,
        )
        sys.exit(code)
    from greentrack.scheduling.planner import format_plan, plan_for

    result = plan_for(request)
    if fmt == "json":
        echo_json(result.to_dict())
    else:
        click.echo(format_plan(result))


@schedule_cmd.command("study")
@intensity_options(
    csv_required=True,
    source=False,
    csv_help="Intensity CSV file(s); files of one zone are joined, each zone is a study.",
)
@click.option(
    "--duration",
    "durations",
    multiple=True,
    required=True,
    metavar="DUR[,DUR...]",
    help="Job durations: 1h,6h,24h.",
)
@click.option(
    "--within",
    "withins",
    multiple=True,
    required=True,
    metavar="DUR[,DUR...]",
    help="Slack after submission: 24h (several allowed).",
)
@click.option("--min-run", metavar="DUR", help="Pause & Resume: shortest run segment [1h].")
@click.option("--max-pauses", type=click.IntRange(min=0), help="Pause & Resume: most pauses.")
@click.option("--plot", "plot_path", metavar="PNG", help="Also save a bar chart here.")
@format_option("table", "markdown", "json")
@translate_errors
def study_cmd(
    intensity: IntensityInput,
    durations: tuple[str, ...],
    withins: tuple[str, ...],
    min_run: str | None,
    max_pauses: int | None,
    plot_path: str | None,
    fmt: str,
) -> None:
    """Replay history: every hourly submission, Flexible Start and Pause & Resume vs running now.

    Reports the mean per-submission reduction and the aggregate reduction (1 - total emitted /
    total if every job had started at once); jobs start on step boundaries.

    \b
    Example:
      greentrack schedule study --csv ES_2022_hourly.csv --duration 1h,6h,24h --within 24h
      greentrack schedule study --csv ES_2022_hourly.csv --csv NO_2022_hourly.csv \\
          --duration 6h --within 12h,24h --format markdown --plot study.png
    """
    from greentrack.scheduling.study import format_study, study_files
    from greentrack.scheduling.study_plot import save_study_plot

    results = study_files(
        list(intensity.csv),
        _split_list(durations),
        _split_list(withins),
        min_run=min_run,
        max_pauses=max_pauses,
        csv_options=intensity.csv_options(),
    )
    if fmt == "json":
        echo_json([row for r in results for row in r.to_list()])
    else:
        click.echo(format_study(results, "markdown" if fmt == "markdown" else "plain"))
    if plot_path:
        out = save_study_plot(results, plot_path)
        click.echo(f"plot: {out}", err=True)
