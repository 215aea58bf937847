"""The price tag of a small piece of research: tuning runs, seeds, a final model — then the report.

    python examples/report_pricetag.py --out pricetag/   # default: a new temporary folder

Trains a small MLP on a synthetic task: a learning-rate sweep (tuning), then two more seeds of
the best setting; the best seed-0 run is tagged ``final=true``. Every run is tracked by
greentrack (on a machine without RAPL or NVIDIA the CPU is *estimated*, and the report says so),
logs its accuracy, its parameter count (``params_total``) and its FLOPs (``gt.count_flops``).
Then it writes, into ``--out`` (default: a new temporary folder, printed at the end; the
example never writes into the folder it is started from unless you name it):

    pricetag.md      the Markdown price tag of the whole development (tuning share, seeds)
    pricetag.tex     the LaTeX table + statement, and pricetag.bib beside it
    report.html      a self-contained page with figures
    power.svg        power over the final run; pareto.png accuracy versus energy
    site/            the static dashboard of the store
    runs.csv         the runs table (``greentrack export`` does the same)

The same from the shell: ``greentrack report --project report-demo --format latex -o x.tex``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from torch import nn

import greentrack as gt

PROJECT = "report-demo"
RULE = torch.randn(16, 3, generator=torch.Generator().manual_seed(7))  # (16, 3)


def make_data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=g)  # (n, 16)
    return x, (x @ RULE).argmax(dim=1)  # (n,)


def train(lr: float, seed: int, epochs: int, *, final: bool = False) -> tuple[str, float]:
    """One tracked training run; returns (run id, validation accuracy)."""
    torch.manual_seed(seed)
    x, y = make_data(2048, seed=100 + seed)
    xv, yv = make_data(512, seed=1)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 3))
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    n_params = sum(p.numel() for p in model.parameters())
    tags = {"final": "true"} if final else {}
    with gt.track(
        "mlp",
        project=PROJECT,
        region="ES",
        interval_s=0.05,
        tags=tags,
        params={"lr": lr, "seed": seed, "epochs": epochs, "params_total": n_params},
    ) as run:
        flops_per_batch = gt.count_flops(model, x[:128])  # forward FLOPs of one batch
        for epoch in range(epochs):
            with run.phase("train"):
                for i in range(0, len(x), 128):
                    loss = nn.functional.cross_entropy(model(x[i : i + 128]), y[i : i + 128])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    run.log_flops(3 * flops_per_batch)  # forward + backward ≈ 3 x forward
            with run.phase("eval"), torch.no_grad():
                acc = (model(xv).argmax(1) == yv).float().mean().item()
            run.log(step=epoch, accuracy=acc, loss=loss.item())
    return run.id, acc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "--out", default=None, help="Folder for the outputs (default: a new temporary folder)."
    )
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="greentrack-pricetag-"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. tuning: a small learning-rate sweep
    sweep = {lr: train(lr, seed=0, epochs=args.epochs) for lr in (0.01, 0.1, 0.5)}
    best_lr = max(sweep, key=lambda lr: sweep[lr][1])
    print(f"best lr {best_lr} (accuracy {sweep[best_lr][1]:.3f})")
    # 2. the final model, and more seeds of it for mean ± std
    train(best_lr, seed=0, epochs=args.epochs, final=True)
    for seed in (1, 2):
        train(best_lr, seed=seed, epochs=args.epochs)

    # 3. the price tag, in every form
    from greentrack.report.figures import make_plot
    from greentrack.report.pricetag import make_report
    from greentrack.report.site import build_site

    md = make_report(project=PROJECT, fmt="markdown", flops=True, output=out / "pricetag.md")
    make_report(project=PROJECT, fmt="latex", flops=True, output=out / "pricetag.tex")
    make_report(project=PROJECT, fmt="html", output=out / "report.html")
    final_id = next(r["id"] for r in md.report["runs"] if r["pricetag"]["final"])
    make_plot("power", out / "power.svg", [final_id])
    make_plot("pareto", out / "pareto.png", project=PROJECT, metric="accuracy")
    site = build_site(out / "site", project=PROJECT)
    from greentrack.report.export import export

    export(out / "runs.csv", project=PROJECT)  # one row per run, like gt.runs_frame()
    df = gt.runs_frame(project=PROJECT)
    print(md.text)
    print(df[["name", "param_lr", "param_seed", "energy_kwh", "co2e_g", "metric_accuracy"]])
    print(
        f"wrote {out}/ (pricetag.md, pricetag.tex, pricetag.bib, report.html, power.svg, "
        f"pareto.png, runs.csv) and {site.index}"
    )


if __name__ == "__main__":
    main()
