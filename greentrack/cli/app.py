"""The click group and the options every command shares. Commands live one group per module."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click

from greentrack.errors import GreentrackError, cli_hints

__all__ = ["db_option", "echo_json", "format_option", "main", "translate_errors"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="greentrack")
def main() -> None:
    """greentrack: energy and carbon accounting for machine-learning runs.

    \b
    Example:
      greentrack run --project demo -- python train.py
      greentrack runs
    """


def translate_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn greentrack's errors into a one-line ``Error: ...`` and exit status 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with cli_hints():  # fix-it hints name the command's options, not Python keywords
                return fn(*args, **kwargs)
        except GreentrackError as e:
            from greentrack.security import mask_url

            message = str(e).splitlines()[0] if str(e) else repr(e)
            raise click.ClickException(mask_url(message)) from None
        except Exception as e:
            import sqlite3

            if type(e) is not sqlite3.DatabaseError:  # a damaged SQLite file, not our bug
                raise
            raise click.ClickException(
                f"the SQLite store is damaged ({e}): check it with `greentrack db current`; "
                "restore a backup, or salvage it with `sqlite3 FILE .recover | sqlite3 NEW.db`"
            ) from None

    return wrapper


def db_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--db URL``: the store (default: ``GREENTRACK_DB``, or SQLite in ``GREENTRACK_HOME``)."""
    return click.option(
        "--db",
        "db_url",
        default=None,
        metavar="URL",
        help="SQLAlchemy URL or SQLite path of the store (default: $GREENTRACK_DB or "
        "~/.greentrack/greentrack.db).",
    )(fn)


def format_option(*choices: str, default: str | None = None) -> Callable[..., Any]:
    """``--format`` with the given choices."""

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=default or choices[0],
            show_default=True,
            help="Output format.",
        )(fn)

    return deco


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON (datetimes and other objects as strings)."""
    from greentrack.jsonout import dumps

    click.echo(dumps(obj, indent=2, ensure_ascii=False))


def err(message: str) -> None:
    """Print a one-line warning on stderr."""
    click.echo(message, err=True, file=sys.stderr)
