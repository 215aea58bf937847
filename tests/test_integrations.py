"""Integrations: the Lightning and Hugging Face callbacks (driven by hand through their hook
protocols, and inside the real Trainers when installed) and the ``%%greentrack`` cell magic.

The real frameworks are optional extras; their tests skip when the package is missing unless
``GREENTRACK_TEST_INTEGRATIONS=require`` (CI), which makes a missing package a failure.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from greentrack.errors import ConfigError
from greentrack.store import queries


def need(module: str):
    """Import an optional framework, or skip (fail under GREENTRACK_TEST_INTEGRATIONS=require)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if os.environ.get("GREENTRACK_TEST_INTEGRATIONS") == "require":
            pytest.fail(f"{module} is not installed ({e}): pip install -e '.[lightning,hf]'")
        pytest.skip(f"{module} not installed")


def stored(url: str, run_id: str) -> dict:
    conn = queries.open_store(url)
    try:
        return queries.get_run(conn, run_id)
    finally:
        conn.close()


def phase_counts(obj: dict) -> dict[str, int]:
    return {p["name"]: p["count"] for p in obj["phase_totals"]}


# -- Lightning ------------------------------------------------------------------------------------
class FakeLightningTrainer(SimpleNamespace):
    """What the callback reads from a Lightning Trainer."""

    def __init__(self) -> None:
        super().__init__(global_step=0, estimated_stepping_batches=6, callback_metrics={},
                         is_global_zero=True, sanity_checking=False, max_epochs=2)  # fmt: skip


class FakeModule:
    def __init__(self) -> None:
        self.hparams = {"lr": 0.1, "hidden": 8}


def test_lightning_hooks_make_phases_metrics_and_progress(sqlite_url: str) -> None:
    from greentrack.integrations.lightning import GreentrackCallback

    cb = GreentrackCallback(project="pl", db=sqlite_url, interval_s=0.05, tags={"k": "v"})
    trainer, module = FakeLightningTrainer(), FakeModule()
    cb.on_fit_start(trainer, module)
    trainer.sanity_checking = True  # Lightning validates a couple of batches first
    cb.on_sanity_check_start(trainer, module)
    cb.on_validation_start(trainer, module)
    cb.on_validation_end(trainer, module)
    cb.on_sanity_check_end(trainer, module)
    trainer.sanity_checking = False
    for epoch in range(2):
        cb.on_train_epoch_start(trainer, module)
        for i in range(3):
            if epoch == 1 and i == 2:  # a mid-epoch validation (val_check_interval < 1)
                cb.on_validation_start(trainer, module)
                trainer.callback_metrics = {"val_loss": 0.5}
                cb.on_validation_end(trainer, module)
            cb.on_train_batch_start(trainer, module, None, i)
            trainer.global_step += 1
            cb.on_train_batch_end(trainer, module, None, None, i)
        cb.on_validation_start(trainer, module)
        trainer.callback_metrics = {"val_loss": 0.4 - epoch / 10, "train_loss": 1.0,
                                    "skipped": "text"}  # fmt: skip
        cb.on_validation_end(trainer, module)
        cb.on_train_epoch_end(trainer, module)
    cb.on_fit_end(trainer, module)
    run = cb.run
    assert run.status == "finished"
    obj = stored(sqlite_url, run.id)
    assert obj["name"] == "FakeModule" and obj["project"] == "pl" and obj["tags"] == {"k": "v"}
    assert obj["params"]["lr"] == "0.1" and obj["params"]["trainer.max_epochs"] == "2"
    assert phase_counts(obj) == {"sanity_check": 1, "epoch": 2, "epoch/train": 3,
                                 "epoch/validate": 3}  # fmt: skip
    totals = {p["name"]: p for p in obj["phase_totals"]}
    inner = totals["epoch/train"]["energy_j"] + totals["epoch/validate"]["energy_j"]
    assert inner <= totals["epoch"]["energy_j"] * (1 + 1e-9)  # the parts within the whole
    assert obj["metrics"] == {"val_loss": pytest.approx(0.3), "train_loss": 1.0}
    assert obj["forecast"]["fraction"] == 1.0


def test_lightning_exception_fails_the_run_and_a_given_run_is_not_stopped(sqlite_url) -> None:
    import greentrack as gt
    from greentrack.integrations.lightning import GreentrackCallback

    cb = GreentrackCallback(db=sqlite_url)
    trainer, module = FakeLightningTrainer(), FakeModule()
    cb.on_fit_start(trainer, module)
    cb.on_train_epoch_start(trainer, module)
    cb.on_exception(trainer, module, RuntimeError("CUDA out of memory"))
    obj = stored(sqlite_url, cb.run.id)
    assert obj["status"] == "failed" and "CUDA out of memory" in obj["error"]

    with gt.track("outer", db=sqlite_url) as run:
        cb = GreentrackCallback(run=run)
        cb.on_fit_start(trainer, module)
        cb.on_train_epoch_start(trainer, module)
        cb.on_train_epoch_end(trainer, module)
        cb.on_fit_end(trainer, module)
        assert run.status == "running"  # the user's run: the callback never stops it
    assert phase_counts(stored(sqlite_url, run.id)) == {"epoch": 1, "epoch/train": 1}


def test_lightning_trainer_fit_and_test(sqlite_url: str, tmp_path: Path) -> None:
    L = need("lightning.pytorch")
    import torch

    from greentrack.integrations.lightning import GreentrackCallback

    torch.set_num_threads(1)

    class Tiny(L.LightningModule):
        def __init__(self, lr: float = 0.05) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    cb = GreentrackCallback(project="pl", db=sqlite_url, interval_s=0.05)
    trainer = L.Trainer(max_epochs=2, callbacks=[cb], accelerator="cpu", devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(Tiny(), loader, loader)
    fit = stored(sqlite_url, cb.run.id)
    assert fit["status"] == "finished" and fit["name"] == "Tiny"
    assert fit["params"]["lr"] == "0.05"
    counts = phase_counts(fit)
    assert counts["epoch"] == 2 and counts["epoch/train"] == 2 and counts["sanity_check"] == 1
    assert counts["epoch/validate"] == 2
    assert set(fit["metrics"]) >= {"train_loss", "val_loss"}
    assert fit["forecast"]["fraction"] == 1.0 and fit["energy_j"] > 0
    fit_id = cb.run.id
    trainer.test(Tiny(), loader)  # a separate run
    test = stored(sqlite_url, cb.run.id)
    assert cb.run.id != fit_id and test["status"] == "finished"
    assert phase_counts(test) == {"test": 1} and "test_loss" in test["metrics"]


# -- Hugging Face ---------------------------------------------------------------------------------
def _hf_args() -> SimpleNamespace:
    return SimpleNamespace(learning_rate=5e-5, per_device_train_batch_size=4, num_train_epochs=2,
                           seed=42, max_steps=-1)  # fmt: skip


def test_hf_hooks_make_phases_metrics_and_progress(sqlite_url: str) -> None:
    from greentrack.integrations.hf import GreentrackCallback

    cb = GreentrackCallback(project="hf", db=sqlite_url, interval_s=0.05)
    args = _hf_args()
    state = SimpleNamespace(global_step=0, max_steps=6, is_world_process_zero=True)
    control = SimpleNamespace(should_evaluate=False)
    model = type("BertTiny", (), {})()
    cb.on_train_begin(args, state, control, model=model)
    for _ in range(2):
        cb.on_epoch_begin(args, state, control)
        for _ in range(3):
            cb.on_step_begin(args, state, control)
            state.global_step += 1
            control.should_evaluate = state.global_step == 2  # an evaluation every N steps
            cb.on_step_end(args, state, control)
            if control.should_evaluate:
                cb.on_evaluate(args, state, control, metrics={"eval_loss": 0.9})
                cb.on_log(args, state, control, logs={"eval_loss": 0.9})
            cb.on_log(args, state, control, logs={"loss": 1.0 / state.global_step, "epoch": 1.0})
        control.should_evaluate = True  # eval_strategy="epoch": after on_epoch_end
        cb.on_epoch_end(args, state, control)
        cb.on_evaluate(args, state, control, metrics={"eval_loss": 0.5})
        cb.on_log(args, state, control, logs={"eval_loss": 0.5})
    cb.on_train_end(args, state, control)
    obj = stored(sqlite_url, cb.run.id)
    assert obj["status"] == "finished" and obj["name"] == "BertTiny"
    assert obj["params"]["learning_rate"] == "5e-05" and obj["params"]["max_steps"] == "6"
    assert phase_counts(obj) == {"epoch": 2, "epoch/train": 3, "epoch/validate": 1,
                                 "validate": 2}  # fmt: skip
    assert obj["metrics"] == {"loss": pytest.approx(1 / 6), "epoch": 1.0, "eval_loss": 0.5}
    assert obj["forecast"]["fraction"] == 1.0


def test_hf_trainer_train(sqlite_url: str, tmp_path: Path) -> None:
    transformers = need("transformers")
    need("accelerate")
    import torch

    from greentrack.integrations.hf import GreentrackCallback

    torch.set_num_threads(1)

    class Regressor(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x, labels=None):
            out = self.layer(x)
            loss = torch.nn.functional.mse_loss(out, labels) if labels is not None else None
            return {"loss": loss, "logits": out}

    rows = [{"x": torch.randn(4), "labels": torch.randn(1)} for _ in range(16)]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), num_train_epochs=2, per_device_train_batch_size=4,
        eval_strategy="epoch", logging_steps=1, save_strategy="no", report_to=[],
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    cb = GreentrackCallback(project="hf", db=sqlite_url, interval_s=0.05)
    trainer = transformers.Trainer(model=Regressor(), args=args, train_dataset=rows,
                                   eval_dataset=rows[:8], callbacks=[cb])  # fmt: skip
    trainer.train()
    obj = stored(sqlite_url, cb.run.id)
    assert obj["status"] == "finished" and obj["name"] == "Regressor"
    assert obj["params"]["num_train_epochs"] == "2"
    counts = phase_counts(obj)
    assert counts["epoch"] == 2 and counts["epoch/train"] == 2 and counts["validate"] == 2
    assert {"loss", "eval_loss"} <= set(obj["metrics"])
    assert obj["forecast"]["fraction"] == 1.0


# -- notebooks ------------------------------------------------------------------------------------
CELL = """
total = 0
with gt_run.phase("loop"):
    for i in range(1000):
        total += i
gt_run.log(step=0, total=total)
"""


def test_cell_magic_runs_the_cell_tracked(sqlite_url: str, capsys) -> None:
    from greentrack.integrations.notebook import run_cell

    ns: dict = {}
    summary = run_cell(f"demo --project nb --db {sqlite_url} --tag who=me --param lr=0.1", CELL,
                       ns)  # fmt: skip
    assert ns["total"] == sum(range(1000)) and ns["gt_summary"] is summary
    assert "run " in capsys.readouterr().out  # the summary is printed
    obj = stored(sqlite_url, summary.id)
    assert (obj["name"], obj["project"], obj["status"]) == ("demo", "nb", "finished")
    assert obj["tags"] == {"who": "me"} and obj["params"] == {"lr": "0.1"}
    assert phase_counts(obj) == {"loop": 1} and obj["metrics"] == {"total": 499500.0}


def test_cell_magic_failure_and_bad_options(sqlite_url: str) -> None:
    from greentrack.integrations.notebook import parse_line, run_cell

    ns: dict = {}
    with pytest.raises(ZeroDivisionError):
        run_cell(f"--db {sqlite_url} --quiet", "1 / 0", ns)
    obj = stored(sqlite_url, ns["gt_run"].id)
    assert obj["status"] == "failed" and "ZeroDivisionError" in obj["error"]
    for bad in ("--tag novalue", "--bogus", "--interval fast", "'unclosed"):
        with pytest.raises(ConfigError) as caught:
            parse_line(bad)
        assert "\n" not in str(caught.value) and "%%greentrack" in str(caught.value)


def test_ipython_extension_registers_the_magic(sqlite_url: str) -> None:
    need("IPython")
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        shell.run_line_magic("load_ext", "greentrack.integrations.notebook")
        result = shell.run_cell(f"%%greentrack nb --db {sqlite_url} --quiet\nx = 21 * 2\n")
        assert result.success, result.error_in_exec
        assert shell.user_ns["x"] == 42
        obj = stored(sqlite_url, shell.user_ns["gt_summary"].id)
        assert obj["name"] == "nb" and obj["status"] == "finished"
    finally:
        InteractiveShell.clear_instance()


# -- the examples, as a user runs them ------------------------------------------------------------
REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "module", "phases"),
    [
        ("lightning_callback.py", "lightning.pytorch", ["epoch", "epoch/train", "epoch/validate"]),
        ("hf_callback.py", "transformers", ["epoch", "epoch/train", "validate"]),
    ],
)
def test_callback_examples(script: str, module: str, phases: list[str], gt_home: Path) -> None:
    import json
    import subprocess
    import sys

    need(module)
    env = dict(os.environ, GREENTRACK_HOME=str(gt_home), OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, str(REPO / "examples" / script), "--epochs", "2"],
                          env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    show = [sys.executable, "-m", "greentrack", "show", "latest", "--format", "json"]
    shown = subprocess.run(show, env=env, capture_output=True, text=True, timeout=60)
    obj = json.loads(shown.stdout)
    assert obj["status"] == "finished" and obj["region"] == "ES" and obj["co2e_g"] > 0
    assert set(phases) <= {p["name"] for p in obj["phase_totals"]}
    assert obj["forecast"]["fraction"] == 1.0
