"""Keeping secrets out of output: database URLs and tokens are masked before display or storage."""

from __future__ import annotations

import re

__all__ = ["mask_secrets", "mask_url"]

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^/\s]*)(?=@)")
_QUERY_SECRET = re.compile(r"(?i)(?P<k>(?:password|token|api[_-]?key|secret)=)(?P<v>[^&\s]+)")


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; also ``?password=...``."""
    out = _URL_PASSWORD.sub(lambda m: m.group("head") + "***", url)
    return _QUERY_SECRET.sub(lambda m: m.group("k") + "***", out)


def mask_secrets(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """Mask URL passwords and every given secret value in free text."""
    out = mask_url(text)
    for s in secrets:
        if s and len(s) >= 4:
            out = out.replace(s, "***")
    return out
