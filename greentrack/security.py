"""Keeping secrets out of output, and stored text safe to store and to name files after.

One masking step at the boundary (:class:`Masker`): every user string greentrack stores or shows
(run and project names, params, tags, warnings, the error text, the command line) has URL
passwords and the values of known secrets replaced by ``***`` before it reaches memory, the
store, the spool, logs or reports. Known secrets are the configured provider tokens (settings
whose key names a token, password, secret or key) and the values of token environment variables:
:data:`SECRET_ENV` by name, and any variable whose name ends in ``_TOKEN``, ``_PASSWORD``,
``_SECRET`` or ``_KEY`` with a value of at least :data:`ENV_SECRET_MIN` characters.

Text the store cannot hold: a NUL byte (PostgreSQL refuses it in text) or a lone surrogate such
as ``"\\ud800"`` (not encodable as UTF-8). In names and keys it is refused with a one-line
error (:func:`unstorable`); in free text (param and tag values, warnings, error text) it is
escaped (:func:`storable`): NUL becomes U+FFFD, a lone surrogate its backslash escape
``\\ud800``.

Run ids (:func:`check_run_id`) are 1 to 32 characters of ``[A-Za-z0-9_-]`` (the store's id
column holds 32); any file name derived from stored data goes through :func:`safe_filename`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "ENV_SECRET_MIN",
    "RUN_ID_MAX",
    "SECRET_ENV",
    "Masker",
    "check_run_id",
    "env_secrets",
    "is_run_id",
    "mask_secrets",
    "mask_url",
    "provider_secrets",
    "safe_filename",
    "storable",
    "storable_tree",
    "unstorable",
]

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^/\s]*)(?=@)")
_QUERY_SECRET = re.compile(r"(?i)(?P<k>(?:password|token|api[_-]?key|secret)=)(?P<v>[^&\s]+)")

SECRET_ENV = (
    "ELECTRICITYMAPS_TOKEN",
    "WATTTIME_PASSWORD",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "WANDB_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "PGPASSWORD",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "COMET_API_KEY",
    "NEPTUNE_API_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AZURE_STORAGE_KEY",
)
"""Environment variables whose values are secrets whatever their length (4 characters or more)."""
_SECRET_SUFFIXES = ("_TOKEN", "_PASSWORD", "_SECRET", "_KEY")
ENV_SECRET_MIN = 8
"""Shortest value of a ``*_TOKEN``/``*_PASSWORD``/``*_SECRET``/``*_KEY`` variable taken as a
secret (shorter ones are too likely to occur in ordinary text). Units: characters."""
_SECRET_MIN = 4  # shorter values are never masked: they would mangle ordinary text

RUN_ID_MAX = 32
"""Longest run id (the width of the store's id columns). Units: characters."""
_RUN_ID = re.compile(rf"[A-Za-z0-9_-]{{1,{RUN_ID_MAX}}}")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_FILE = re.compile(r"[^A-Za-z0-9_-]")


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; also ``?password=...``."""
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", url)
    return _QUERY_SECRET.sub(lambda m: m.group("k") + "***", out)


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Mask URL passwords and every given secret value (4 characters or more) in free text."""
    out = mask_url(text)
    for s in sorted({s for s in secrets if s and len(s) >= _SECRET_MIN}, key=len, reverse=True):
        out = out.replace(s, "***")
    return out


def env_secrets(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of the environment's token variables (see the module docstring)."""
    env = os.environ if env is None else env
    out = []
    for name, value in env.items():
        if not value:
            continue
        upper = name.upper()
        if upper in SECRET_ENV or (
            upper.endswith(_SECRET_SUFFIXES) and len(value) >= ENV_SECRET_MIN
        ):
            out.append(value)
    return out


def provider_secrets(providers: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Provider settings whose key names a secret (token, password, secret, key)."""
    out = []
    for opts in (providers or {}).values():
        for k, v in opts.items():
            if isinstance(v, str) and any(
                w in k.lower() for w in ("token", "password", "secret", "key")
            ):
                out.append(v)
    return out


def unstorable(text: str) -> str | None:
    """Why the store cannot hold ``text`` (a NUL byte, a lone surrogate), or None if it can."""
    if "\x00" in text:
        return "contains a NUL byte"
    if not text.isascii():
        m = _SURROGATE.search(text)
        if m:
            return f"contains a lone surrogate ({m.group().encode('unicode_escape').decode()})"
    return None


def storable(text: str) -> str:
    """Free text the store can hold: NUL -> U+FFFD, a lone surrogate -> its ``\\udXXX`` escape."""
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if not text.isascii() and _SURROGATE.search(text):
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def storable_tree(obj: Any) -> Any:
    """:func:`storable` applied to every string (keys included) of a JSON-like tree."""
    if isinstance(obj, str):
        return storable(obj)
    if isinstance(obj, dict):
        return {storable_tree(k): storable_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [storable_tree(v) for v in obj]
    return obj


class Masker:
    """The masking step at the boundary: URL passwords and known secret values -> ``***``, and
    text made storable (:func:`storable`).

    Args:
        secrets: extra secret values (e.g. from :func:`provider_secrets`).
        env: environment whose token variables are secrets too (default ``os.environ``).
    """

    def __init__(self, secrets: Iterable[str] = (), env: Mapping[str, str] | None = None) -> None:
        found = {s for s in (*secrets, *env_secrets(env)) if s and len(s) >= _SECRET_MIN}
        self.secrets: tuple[str, ...] = tuple(sorted(found, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` masked and storable."""
        out = mask_url(storable(text))
        for s in self.secrets:
            if s in out:
                out = out.replace(s, "***")
        return out


def is_run_id(run_id: str) -> bool:
    """True for 1 to :data:`RUN_ID_MAX` characters of ``[A-Za-z0-9_-]``."""
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None


def check_run_id(run_id: str, origin: str = "run_id") -> str:
    """``run_id`` if valid; otherwise a one-line :class:`ConfigError` naming where it came from."""
    if is_run_id(run_id):
        return run_id
    from greentrack.errors import ConfigError

    shown = run_id if len(run_id) <= 40 else run_id[:37] + "..."
    raise ConfigError(
        f"{origin}={storable(shown)!r} is not a valid run id: use 1 to {RUN_ID_MAX} characters "
        "of A-Z, a-z, 0-9, '_' and '-'"
    )


def safe_filename(text: str) -> str:
    """A file name derived from stored data that stays inside its folder: ``text`` itself when it
    is a valid run id, else its safe characters plus a hash (``_x_y-3f2a9c1d``)."""
    if is_run_id(text):
        return text
    import hashlib

    digest = hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()[:12]
    return (_UNSAFE_FILE.sub("_", text)[:40] or "_") + "-" + digest
