"""Hugging Face ``transformers``: ``GreentrackCallback`` measures a ``Trainer`` run, by phase.

    from greentrack.integrations.hf import GreentrackCallback

    trainer = Trainer(model=model, args=args, train_dataset=ds, eval_dataset=val,
                      callbacks=[GreentrackCallback(project="bert")])
    trainer.train()

What it records (``pip install 'greentrack[hf]'``):

- a run from ``on_train_begin`` to ``on_train_end`` (or reports to ``run=`` if given, which it
  never stops), named after the model class, with the main ``TrainingArguments`` as params;
- phases ``epoch`` containing ``epoch/train``, and ``validate`` for each evaluation: the
  callback sees ``control.should_evaluate`` once the Trainer has decided to evaluate (after a
  step, or after an epoch), so a validation phase starts before the first eval batch and ends at
  ``on_evaluate``. Evaluations after an epoch's end are top-level ``validate`` phases, after a
  step ``epoch/validate``;
- every numeric value of ``on_log`` (loss, learning rate, eval metrics) at ``global_step``, on the
  main process only;
- progress ``global_step / max_steps``, so the run forecasts its final energy.

The Trainer has no hook for exceptions: a run the callback started ends ``finished`` at exit even
if training raised. For the exact status, wrap the call::

    with gt.track("finetune", project="bert") as run:
        Trainer(..., callbacks=[GreentrackCallback(run=run)]).train()
"""

from __future__ import annotations

from typing import Any

from greentrack.integrations._common import FrameworkCallback

__all__ = ["GreentrackCallback"]

try:
    from transformers import TrainerCallback as _Base
except ImportError:  # pragma: no cover - depends on what is installed
    _Base = object  # duck-typed: the Trainer calls the hooks by name

_ARGS = ("learning_rate", "per_device_train_batch_size", "gradient_accumulation_steps",
         "num_train_epochs", "max_steps", "weight_decay", "warmup_steps", "seed", "bf16", "fp16",
         "optim", "lr_scheduler_type")  # fmt: skip


def _params(args: Any, state: Any) -> dict[str, Any]:
    params = {k: getattr(args, k) for k in _ARGS if getattr(args, k, None) is not None}
    if getattr(state, "max_steps", None):
        params["max_steps"] = state.max_steps
    return {k: getattr(v, "value", v) for k, v in params.items()}  # enums as their value


class GreentrackCallback(FrameworkCallback, _Base):  # type: ignore[misc, valid-type]
    """Measure a ``transformers.Trainer`` run (see the module docstring).

    Args:
        name: run name (default: the model's class name).
        run: a started :class:`greentrack.Run` to report to instead of starting one.
        **track_kwargs: arguments of :func:`greentrack.track` (``project``, ``tags``, ``db``,
            ``region``, ``interval_s``, ...).
    """

    def _evaluating(self, control: Any) -> None:
        if getattr(control, "should_evaluate", False):
            self.gt.close("train")
            self.gt.open("validate")

    # -- the Trainer's hooks ---------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        model = kwargs.get("model")
        self.gt.ensure("train", type(model).__name__ if model is not None else "train",
                       _params(args, state))  # fmt: skip

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.gt.open("epoch")
        self.gt.open("train")

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.gt.is_open("epoch") and not self.gt.is_open("train"):
            self.gt.open("train")  # training resumes after a mid-epoch evaluation

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.gt.progress(state.global_step, getattr(state, "max_steps", None))
        self._evaluating(control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.gt.close("validate")
        self.gt.close("train")
        self.gt.close("epoch")
        self._evaluating(control)

    def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.gt.close("validate")

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if getattr(state, "is_world_process_zero", True):
            self.gt.log(state.global_step, kwargs.get("logs") or {})

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.gt.finish("train")

    # the rest of the protocol (duck-typed use without transformers)
    def on_init_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kw: Any) -> None: ...
    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
    def on_predict(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
    def on_prediction_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
    def on_push_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None: ...
