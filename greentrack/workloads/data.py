"""Benchmark tasks, generated in code with fixed seeds (no network), plus one real public dataset.

Tasks:

- :func:`listops` — ListOps with the Long Range Arena rules (Tay et al., 2021, "Long Range
  Arena", arXiv:2011.04006; generator after ``lra_benchmarks/data/listops.py``): nested
  ``[MAX``, ``[MIN``, ``[MED``, ``[SM`` (sum modulo 10) over digits, answer 0-9. Shortened for
  a CPU: shallower trees and sequences of tens of tokens instead of up to 2,000.
- :func:`char_lm` — a character-level language model on the public-domain corpus shipped in
  the package (``corpus.txt``: Shakespeare's sonnets, Dickens, Lincoln, Carroll; ~9 KB).
- :func:`shapes` — a small image-like classification task: ten 16×16 shapes (bars, diagonals,
  crosses, rings, ...) at a random offset, with a per-image contrast drawn from a wide range
  and Gaussian noise, so that some images are easy and some are hard (which is what early
  exit exploits). Returned as 4×4 patches (ViT-style tokens) and as flat pixels.
- :func:`load_tiny_shakespeare` — the real Tiny Shakespeare file (Karpathy's char-rnn, 1,115,394
  bytes) downloaded by URL, cached and checked by SHA-256. Only this function touches the
  network, and only when called without a cached copy.
"""

from __future__ import annotations

import hashlib
import os
import random
import statistics
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import torch

from greentrack.errors import DatasetError

__all__ = [
    "TINY_SHAKESPEARE_SHA256",
    "TINY_SHAKESPEARE_URL",
    "DatasetError",
    "Split",
    "Task",
    "char_lm",
    "corpus_text",
    "listops",
    "listops_tree",
    "load_tiny_shakespeare",
    "shapes",
]

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


@dataclass(frozen=True)
class Split:
    """Inputs and targets of one split.

    Attributes:
        x: inputs, ``(N, T)`` token ids (long) or ``(N, T, F)`` patch features (float).
        y: targets, ``(N,)`` class ids or ``(N, T)`` next-token ids.
    """

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: str | torch.device) -> Split:
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Task:
    """A generated task: three splits and what a model needs to know about them.

    Attributes:
        name: ``listops``, ``char_lm`` or ``shapes``.
        kind: ``classify`` (one label per example) or ``lm`` (one label per token).
        train, val, test: the splits (val calibrates thresholds, test is reported).
        vocab_size: number of token ids (token inputs), else None.
        n_classes: number of classes (``classify``) or the vocabulary (``lm``).
        seq_len: tokens per example.
        patch_dim: features per token for patch inputs, else None.
        pad_id: the padding token id (ListOps), else None.
        meta: anything else worth recording (majority-class accuracy, generator settings).
    """

    name: str
    kind: Literal["classify", "lm"]
    train: Split
    val: Split
    test: Split
    n_classes: int
    seq_len: int
    vocab_size: int | None = None
    patch_dim: int | None = None
    pad_id: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to(self, device: str | torch.device) -> Task:
        return Task(
            self.name,
            self.kind,
            self.train.to(device),
            self.val.to(device),
            self.test.to(device),
            self.n_classes,
            self.seq_len,
            self.vocab_size,
            self.patch_dim,
            self.pad_id,
            dict(self.meta),
        )


# --------------------------------------------------------------------------------------- ListOps

LISTOPS_OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
LISTOPS_VOCAB = ("<pad>", *(str(d) for d in range(10)), *LISTOPS_OPERATORS, "]")
_VALUE_P = 0.25  # LRA: probability that a node below max depth is a leaf digit is 1 - 0.25


def listops_tree(rng: random.Random, depth: int, max_depth: int, max_args: int) -> Any:
    """One random ListOps tree, LRA style: a digit, or ``(op, [children])``."""
    r = rng.random() if depth < max_depth else 1.0
    if r > _VALUE_P:
        return rng.randrange(10)
    n_args = rng.randint(2, max_args)
    children = [listops_tree(rng, depth + 1, max_depth, max_args) for _ in range(n_args)]
    return (rng.choice(LISTOPS_OPERATORS), children)


def listops_eval(tree: Any) -> int:
    """The value of a ListOps tree: LRA semantics (median truncated to int, sum modulo 10)."""
    if isinstance(tree, int):
        return tree
    op, children = tree
    values = [listops_eval(c) for c in children]
    if op == "[MIN":
        return min(values)
    if op == "[MAX":
        return max(values)
    if op == "[MED":
        return int(statistics.median(values))
    return sum(values) % 10


def listops_tokens(tree: Any) -> list[str]:
    """The token sequence of a tree, e.g. ``[MAX 4 [MIN 2 3 ] 1 ]``."""
    if isinstance(tree, int):
        return [str(tree)]
    op, children = tree
    out = [op]
    for c in children:
        out.extend(listops_tokens(c))
    out.append("]")
    return out


def listops(
    n_train: int = 4000,
    n_val: int = 1000,
    n_test: int = 1000,
    *,
    max_depth: int = 3,
    max_args: int = 4,
    min_len: int = 8,
    max_len: int = 48,
    seed: int = 0,
) -> Task:
    """ListOps (LRA rules, shortened): classify the value (0-9) of a nested list expression.

    Trees are drawn until their token length lies in ``[min_len, max_len]`` (LRA draws up to
    depth 10, 10 arguments, 500-2,000 tokens); sequences are right-padded with ``<pad>`` (id 0)
    to ``max_len``.
    """
    if not 2 <= min_len <= max_len:
        raise ValueError(f"need 2 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = random.Random(seed)
    index = {tok: i for i, tok in enumerate(LISTOPS_VOCAB)}
    n = n_train + n_val + n_test
    xs = torch.zeros(n, max_len, dtype=torch.long)
    ys = torch.zeros(n, dtype=torch.long)
    seen: set[tuple[int, ...]] = set()
    i = 0
    while i < n:
        tree = listops_tree(rng, 1, max_depth, max_args)
        toks = listops_tokens(tree)
        if not min_len <= len(toks) <= max_len:
            continue
        ids = tuple(index[t] for t in toks)
        if ids in seen:  # keep splits disjoint
            continue
        seen.add(ids)
        xs[i, : len(ids)] = torch.tensor(ids)
        ys[i] = listops_eval(tree)
        i += 1
    a, b = n_train, n_train + n_val
    majority = float(torch.bincount(ys[b:], minlength=10).max()) / max(1, n_test)
    return Task(
        name="listops",
        kind="classify",
        train=Split(xs[:a], ys[:a]),
        val=Split(xs[a:b], ys[a:b]),
        test=Split(xs[b:], ys[b:]),
        n_classes=10,
        seq_len=max_len,
        vocab_size=len(LISTOPS_VOCAB),
        pad_id=0,
        meta={
            "majority_accuracy": majority,
            "max_depth": max_depth,
            "max_args": max_args,
            "min_len": min_len,
            "max_len": max_len,
            "seed": seed,
        },
    )


# ------------------------------------------------------------------------------ character LM


def corpus_text() -> str:
    """The public-domain corpus shipped with greentrack (``greentrack/workloads/corpus.txt``)."""
    return resources.files("greentrack.workloads").joinpath("corpus.txt").read_text("utf-8")


def char_lm(
    seq_len: int = 64,
    *,
    n_train: int = 2000,
    text: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Task:
    """Character-level language modelling: predict each next character of a text window.

    The text (default: :func:`corpus_text`) is cut into train / val / test by position (the
    last ``val_fraction + test_fraction`` is held out, so test text is never trained on).
    Training windows start at random offsets (seeded); val and test windows tile their part.
    ``y`` is ``x`` shifted by one character.
    """
    text = corpus_text() if text is None else text
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    n = len(data)
    a = int(n * (1.0 - val_fraction - test_fraction))
    b = int(n * (1.0 - test_fraction))
    if min(a, b - a, n - b) < seq_len + 1:
        raise DatasetError(
            f"text of {n} characters is too short for {seq_len}-character windows in every "
            "split; use a longer text or a smaller seq_len"
        )
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, a - seq_len - 1, (n_train,), generator=g)

    def windows(part: torch.Tensor, starts: torch.Tensor) -> Split:
        idx = starts[:, None] + torch.arange(seq_len + 1)[None, :]  # (N, T+1)
        w = part[idx]
        return Split(w[:, :-1].contiguous(), w[:, 1:].contiguous())

    def tiled(part: torch.Tensor) -> Split:
        return windows(part, torch.arange(0, len(part) - seq_len - 1, seq_len))

    return Task(
        name="char_lm",
        kind="lm",
        train=windows(data[:a], starts),
        val=tiled(data[a:b]),
        test=tiled(data[b:]),
        n_classes=len(chars),
        seq_len=seq_len,
        vocab_size=len(chars),
        meta={"chars": "".join(chars), "n_chars": n, "seed": seed},
    )


# ------------------------------------------------------------------------------------ shapes


def _shape_templates(size: int) -> torch.Tensor:
    """Ten binary shapes on a ``size × size`` grid, centred: (10, size, size)."""
    r = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    c = (size - 1) / 2.0
    d = ((yy - c) ** 2 + (xx - c) ** 2).sqrt()
    half = size // 4
    inner = (yy - c).abs() <= half
    inner &= (xx - c).abs() <= half
    t = torch.stack(
        [
            ((yy - c).abs() <= 1) & ((xx - c).abs() <= half + 1),  # 0 horizontal bar
            ((xx - c).abs() <= 1) & ((yy - c).abs() <= half + 1),  # 1 vertical bar
            ((yy - xx).abs() <= 1) & inner,  # 2 diagonal
            ((yy + xx - 2 * c).abs() <= 1) & inner,  # 3 anti-diagonal
            (((yy - c).abs() <= 1) | ((xx - c).abs() <= 1)) & inner,  # 4 plus
            (((yy - xx).abs() <= 1) | ((yy + xx - 2 * c).abs() <= 1)) & inner,  # 5 cross
            inner & ~(((yy - c).abs() <= half - 2) & ((xx - c).abs() <= half - 2)),  # 6 square
            d <= half,  # 7 disk
            (d <= half + 1) & (d >= half - 1),  # 8 ring
            inner & (yy < c) & (xx < c) | inner & (yy > c) & (xx > c),  # 9 checker
        ]
    )
    return t.float()


def shapes(
    n_train: int = 6000,
    n_val: int = 1000,
    n_test: int = 1000,
    *,
    size: int = 16,
    patch: int = 4,
    max_shift: int = 1,
    contrast: tuple[float, float] = (0.1, 2.0),
    noise: float = 0.5,
    seed: int = 0,
) -> Task:
    """Ten noisy shapes to classify; each image's contrast is drawn from ``contrast``.

    ``x`` is ``(N, (size/patch)², patch²)`` patches (row-major, pixels row-major inside a patch);
    :func:`flatten_patches` gives ``(N, size²)`` pixels for MLPs. Low-contrast images are hard,
    high-contrast ones easy: the spread is deliberate (early exit depends on it).
    """
    if size % patch:
        raise ValueError(f"size {size} is not a multiple of patch {patch}")
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val + n_test
    templates = _shape_templates(size)  # (10, S, S)
    y = torch.randint(0, 10, (n,), generator=g)
    img = templates[y]  # (N, S, S)
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=g)
    img = torch.stack(
        [
            torch.roll(im, (int(s[0]), int(s[1])), dims=(0, 1))
            for im, s in zip(img, shifts, strict=True)
        ]
    )
    lo, hi = contrast
    amp = lo + (hi - lo) * torch.rand(n, 1, 1, generator=g)
    img = amp * img + noise * torch.randn(n, size, size, generator=g)
    k = size // patch
    x = img.view(n, k, patch, k, patch).permute(0, 1, 3, 2, 4).reshape(n, k * k, patch * patch)
    a, b = n_train, n_train + n_val
    return Task(
        name="shapes",
        kind="classify",
        train=Split(x[:a].contiguous(), y[:a]),
        val=Split(x[a:b].contiguous(), y[a:b]),
        test=Split(x[b:].contiguous(), y[b:]),
        n_classes=10,
        seq_len=k * k,
        patch_dim=patch * patch,
        meta={"size": size, "patch": patch, "contrast": contrast, "noise": noise, "seed": seed},
    )


def flatten_patches(x: torch.Tensor) -> torch.Tensor:
    """Patches ``(N, T, F)`` -> flat ``(N, T*F)`` (the pixel order does not matter to an MLP)."""
    return x.reshape(x.shape[0], -1)


# ------------------------------------------------------------------------- Tiny Shakespeare


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_tiny_shakespeare(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    url: str = TINY_SHAKESPEARE_URL,
    sha256: str = TINY_SHAKESPEARE_SHA256,
    timeout_s: float = 30.0,
) -> str:
    """Tiny Shakespeare as text: from the cache when its checksum matches, else downloaded.

    Args:
        cache_dir: where ``tinyshakespeare.txt`` is kept (default ``$GREENTRACK_HOME/data``).
            Put a copy there to work offline.
        url: where to download from (a mirror, or a local server in tests).
        sha256: the expected SHA-256 of the file; the download is refused when it differs.
        timeout_s: network timeout. Units: seconds.

    Raises:
        DatasetError: the download failed or the bytes do not match ``sha256``.
    """
    if cache_dir is None:
        from greentrack.config import load_config

        cache_dir = Path(load_config().home) / "data"
    cache = Path(cache_dir)
    path = cache / "tinyshakespeare.txt"
    if path.exists():
        got = _sha256(path)
        if got == sha256:
            return path.read_text("utf-8")
        raise DatasetError(
            f"cached {path} has SHA-256 {got[:12]}…, expected {sha256[:12]}…; delete it to "
            "download it again"
        )
    cache.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            payload = resp.read()
    except (urllib.error.URLError, OSError) as e:
        raise DatasetError(
            f"could not download Tiny Shakespeare from {url} ({e}); check the network or put "
            f"the file at {path}"
        ) from e
    got = hashlib.sha256(payload).hexdigest()
    if got != sha256:
        raise DatasetError(
            f"download from {url} has SHA-256 {got[:12]}…, expected {sha256[:12]}…; the file "
            "changed or the mirror is wrong: pass the right url or sha256"
        )
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".tinyshakespeare.")
    with os.fdopen(fd, "wb") as f:
        f.write(payload)
    os.replace(tmp, path)
    return payload.decode("utf-8")
