"""PyTorch Lightning: ``GreentrackCallback`` measures a ``Trainer`` run, by phase.

    from greentrack.integrations.lightning import GreentrackCallback

    trainer = L.Trainer(max_epochs=3, callbacks=[GreentrackCallback(project="cifar")])
    trainer.fit(model, datamodule)

What it records (``pip install 'greentrack[lightning]'``):

- a run per ``fit`` / ``validate`` / ``test`` / ``predict`` (or reports to ``run=`` if given, which
  it never stops), named after the LightningModule, with its ``hparams`` as params; ``failed`` or
  ``interrupted`` if the trainer raises (``on_exception``);
- phases ``epoch`` (each training epoch) containing ``epoch/train`` and ``epoch/validate``
  (training pauses while Lightning validates), ``sanity_check``, ``test`` and ``predict`` — the
  energy of each from meter reads at the hooks;
- ``trainer.callback_metrics`` at each epoch end and validation end, at ``global_step`` (global
  rank 0 only: Lightning syncs what it logs);
- progress ``global_step / estimated_stepping_batches``, so the run forecasts its final energy.

Under DDP every rank runs the callback, so every rank attaches to one run (see
:mod:`greentrack.distributed`). The Lightning import is this module's only cost; ``lightning``
(or the older ``pytorch_lightning``) is looked up when this module is imported, never by
``import greentrack``.
"""

from __future__ import annotations

from typing import Any

from greentrack.integrations._common import FrameworkCallback

__all__ = ["GreentrackCallback"]

try:
    from lightning.pytorch import Callback as _Base
except ImportError:  # pragma: no cover - depends on what is installed
    try:
        from pytorch_lightning import Callback as _Base
    except ImportError:
        _Base = object  # duck-typed: the hooks work; Lightning's Trainer wants its own class


def _params(trainer: Any, module: Any) -> dict[str, Any]:
    params: dict[str, Any] = {}
    hparams = getattr(module, "hparams", None)
    if hparams:
        try:
            params.update({str(k): v for k, v in dict(hparams).items()})
        except (TypeError, ValueError):
            pass
    for key in ("max_epochs", "max_steps", "precision", "accumulate_grad_batches", "world_size"):
        value = getattr(trainer, key, None)
        if value is not None:
            params.setdefault(f"trainer.{key}", value)
    return params


class GreentrackCallback(FrameworkCallback, _Base):  # type: ignore[misc, valid-type]
    """Measure a Lightning ``Trainer`` run (see the module docstring).

    Args:
        name: run name (default: the LightningModule's class name).
        run: a started :class:`greentrack.Run` to report to instead of starting one.
        **track_kwargs: arguments of :func:`greentrack.track` (``project``, ``tags``, ``db``,
            ``region``, ``interval_s``, ...).
    """

    def _begin(self, stage: str, trainer: Any, module: Any) -> None:
        self.gt.ensure(stage, type(module).__name__, _params(trainer, module))

    def _log(self, trainer: Any) -> None:
        if getattr(trainer, "is_global_zero", True):
            self.gt.log(getattr(trainer, "global_step", None), trainer.callback_metrics)

    # -- stages --------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self._begin("fit", trainer, pl_module)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.gt.finish("fit")

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self.gt.finish("fit", status, f"{type(exception).__name__}: {exception}".strip())

    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        self.gt.open("sanity_check")

    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        self.gt.close("sanity_check")

    # -- training ------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self.gt.open("epoch")
        self.gt.open("train")

    def on_train_batch_start(
        self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.gt.is_open("epoch") and not self.gt.is_open("train"):
            self.gt.open("train")  # training resumes after a mid-epoch validation

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.gt.progress(trainer.global_step, getattr(trainer, "estimated_stepping_batches", None))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self.gt.close("train")
        self._log(trainer)
        self.gt.close("epoch")

    # -- validation (inside fit: between train and the epoch's end) ------------------------------
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        if not self.gt.active:
            self._begin("validate", trainer, pl_module)  # trainer.validate(...) on its own
        self.gt.close("train")
        self.gt.open("validate")

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        self.gt.close("validate")
        self._log(trainer)
        if self.gt.started_by == "validate":
            self.gt.finish("validate")

    # -- test and predict ------------------------------------------------------------------------
    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._begin("test", trainer, pl_module)
        self.gt.open("test")

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.gt.close("test")
        self._log(trainer)
        self.gt.finish("test")

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._begin("predict", trainer, pl_module)
        self.gt.open("predict")

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.gt.close("predict")
        self.gt.finish("predict")
