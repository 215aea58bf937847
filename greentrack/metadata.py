"""Run metadata: host, OS, Python, CPU/GPU models, torch/CUDA, command line, git, Slurm.

Collected on the sampler thread (git takes a few milliseconds), never importing torch: torch
versions are recorded only when the user's program has already imported it.
"""

from __future__ import annotations

import functools
import os
import platform
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import subprocess

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
    """``{"commit": sha, "dirty": bool}`` of the working directory's repository, or ``{}``.

    One ``git status --porcelain=v2 --branch`` gives both (git >= 2.17; an older git, which
    refuses ``--no-ahead-behind``, and a bare repository are asked ``rev-parse HEAD`` and
    ``status`` instead). "Dirty" means a tracked file differs from the commit (untracked files
    do not count); a repository without a commit gives ``{}``. Outside any repository (no
    ``.git`` nor a bare repository in the folder or above it, no ``GIT_DIR``) git is not run.
    """
    cwd = str(cwd or os.getcwd())
    if not _maybe_in_repository(Path(cwd)):
        return {}
    import subprocess

    try:
        out = _git(cwd, "status", "--porcelain=v2", "--branch", "--untracked-files=no",
                   "--no-ahead-behind")  # fmt: skip
        if out.returncode == 0:
            lines = out.stdout.splitlines()
            oid = next((ln[len("# branch.oid ") :] for ln in lines
                        if ln.startswith("# branch.oid ")), "")  # fmt: skip
            if not oid or oid.startswith("("):  # "(initial)": no commit yet
                return {}
            return {"commit": oid.strip(), "dirty": any(not ln.startswith("#") for ln in lines)}
        # 129: an option this git lacks; "work tree": a bare repository; else not a repository
        if out.returncode != 129 and "work tree" not in out.stderr:
            return {}
        sha = _git(cwd, "rev-parse", "HEAD")
        if sha.returncode != 0:
            return {}
        status = _git(cwd, "status", "--porcelain", "--untracked-files=no")
        return {"commit": sha.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {}


def _maybe_in_repository(folder: Path) -> bool:
    """Whether git could find a repository from ``folder``: ``GIT_DIR`` is set, or the folder
    or one above it has a ``.git`` (folder or file) or is a bare repository (``HEAD`` and
    ``objects/``). A few stat calls, instead of starting git where there is nothing to find."""
    if os.environ.get("GIT_DIR"):
        return True
    for d in (folder, *folder.parents):
        if (d / ".git").exists() or ((d / "HEAD").is_file() and (d / "objects").is_dir()):
            return True
    return False


def _git(cwd: str, *args: str) -> subprocess.CompletedProcess[str]:
    import subprocess

    env = {**os.environ, "LC_ALL": "C"}  # git's messages untranslated (the bare-repo test)
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=2
    )


_STATIC_LOCK = threading.Lock()


def static_metadata() -> dict[str, Any]:
    """What does not change during a process: looked up once (git takes a few ms). Callers on
    two threads at once (a run's first checkpoint and its stop) wait for one lookup."""
    with _STATIC_LOCK:
        return _static_metadata()


def _after_fork_in_child() -> None:
    global _STATIC_LOCK
    _STATIC_LOCK = threading.Lock()  # a parent thread may have held it at the fork
    _static_metadata.cache_clear()  # the child's pid (and the parent's lookup may be half done)


os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.lru_cache(maxsize=1)
def _static_metadata() -> dict[str, Any]:
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


static_metadata.cache_clear = _static_metadata.cache_clear  # type: ignore[attr-defined]


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
