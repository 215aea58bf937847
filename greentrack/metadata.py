"""Run metadata: host, OS, Python, CPU/GPU models, torch/CUDA, command line, git, Slurm.

Collected on the sampler thread (git takes a few milliseconds), never importing torch: torch
versions are recorded only when the user's program has already imported it.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["collect", "git_info", "mask_argv", "secret_values", "static_metadata"]

_SECRET_FLAGS = ("password", "passwd", "token", "secret", "api-key", "api_key", "apikey")


def secret_values(providers: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Values never to store: provider settings whose key names a secret (token, password...)."""
    from greentrack.security import provider_secrets

    return provider_secrets(providers)


def mask_argv(argv: list[str], secrets: list[str] | tuple[str, ...] = ()) -> list[str]:
    """A command line safe to store: URL passwords, ``--token X`` / ``--password=X`` values and
    the given secret values replaced by ``***``."""
    from greentrack.security import mask_secrets

    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        flag = arg.lstrip("-").lower()
        if arg.startswith("-") and any(w in flag for w in _SECRET_FLAGS):
            if "=" in arg:
                arg = arg.split("=", 1)[0] + "=***"
            else:
                hide_next = True
        out.append(mask_secrets(arg, secrets))
    return out


def git_info(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"commit": sha, "dirty": bool}`` of the working directory's repository, or ``{}``."""
    cwd = str(cwd or os.getcwd())
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=2
        )
        if sha.returncode != 0:
            return {}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=2,
        )
        return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


@functools.lru_cache(maxsize=1)
def static_metadata() -> dict[str, Any]:
    """What does not change during a process: looked up once (git takes a few ms)."""
    from greentrack import hardware

    meta: dict[str, Any] = {
        "host": hardware.hostname(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "cpu_model": hardware.cpu_model(),
        "cpu_count": os.cpu_count(),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }
    git = git_info()
    if git:
        meta["git"] = git
    slurm = {
        key: os.environ[var]
        for key, var in (
            ("job_id", "SLURM_JOB_ID"),
            ("node", "SLURMD_NODENAME"),
            ("array", "SLURM_ARRAY_TASK_ID"),
        )
        if var in os.environ
    }
    if slurm:
        meta["slurm"] = slurm
    return meta


def collect(
    device_models: dict[str, str] | None = None, secrets: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Everything worth knowing about where and how a run ran; the command line is masked
    (URL passwords, ``--token X`` and the given secret values become ``***``)."""
    meta = dict(static_metadata())
    meta["command"] = mask_argv(list(meta["command"]), secrets)
    meta["gpu_models"] = sorted(
        {m for d, m in (device_models or {}).items() if d.startswith("gpu")}
    )
    torch = sys.modules.get("torch")
    if torch is not None:
        meta["torch"] = getattr(torch, "__version__", None)
        meta["cuda"] = getattr(getattr(torch, "version", None), "cuda", None)
    return meta
