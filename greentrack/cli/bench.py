"""``greentrack bench``: train and measure the reference efficient models."""

from __future__ import annotations

import click

from greentrack.cli.app import db_option, format_option, main, translate_errors
from greentrack.workloads.suites import SUITES

__all__ = ["bench"]


@main.command("bench")
@click.option(
    "--suite",
    type=click.Choice(list(SUITES)),
    default="quick",
    show_default=True,
    help="Sizes: tiny (one step per workload, for CI), quick (minutes on a CPU), full (GPU).",
)
@click.option("--tiny", is_flag=True, help="Same as --suite tiny.")
@click.option(
    "--only",
    metavar="NAMES",
    default=None,
    help="Comma-separated workloads (their baselines run too), e.g. early_exit,moe; "
    "linear_attention_sweep measures attention cost against sequence length.",
)
@click.option(
    "--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
    help="Where to train and run the models.",
)  # fmt: skip
@format_option("table", "json")
@db_option
@click.option(
    "--plot", "plot_path", metavar="PNG", default=None,
    help="Also draw accuracy against inference energy (Pareto chart; needs matplotlib).",
)  # fmt: skip
@click.option("--no-progress", is_flag=True, help="Do not show progress on stderr.")
@translate_errors
def bench(
    suite: str,
    tiny: bool,
    only: str | None,
    device: str,
    fmt: str,
    db_url: str | None,
    plot_path: str | None,
    no_progress: bool,
) -> None:
    """Train and measure the reference efficient models: accuracy against energy.

    Each workload is a run of project "bench" with phases train, eval and inference.
    Workloads: transformer_shapes, early_exit, distill, int8, prune, prune_csr,
    transformer_lm, moe, sparse_ffn, transformer_listops, rfa, abc, backprop_mlp, dfa.

    \b
    Example:
      greentrack bench --suite quick
      greentrack bench --only early_exit,moe --format json
      greentrack bench --only linear_attention_sweep
      greentrack bench --tiny --plot pareto.png
    """
    from greentrack.workloads.bench import bench as run
    from greentrack.workloads.output import format_report

    names = [n for n in (only or "").split(",") if n.strip()] or None
    report = run("tiny" if tiny else suite, names, device, db_url, not no_progress,
                 plot_path=plot_path)  # fmt: skip
    click.echo(format_report(report, fmt))
    if plot_path and report.results:
        click.echo(f"Pareto chart written to {plot_path}", err=True)
