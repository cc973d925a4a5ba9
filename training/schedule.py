"""Fit a training schedule to a wall-clock budget.

A config describes a run in steps: ``steps`` in all, a linear warm-up of ``warmup_steps``, the
adversarial term from ``adv_start_step``, validation every ``val_every`` and checkpoints every
``ckpt_every`` steps. With a time budget the number of steps that fit is not known in advance,
so the run measures its own rate and re-plans the total; every other step count keeps its
*share* of the config's run (a warm-up of 1,000 of 200,000 steps stays 0.5 % of the run), so the
warm-up + cosine schedule always runs to completion, whatever the budget or the hardware.

Pure logic (no torch): the trainer feeds it (step, time) and gets the planned total back.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from training.config import TrainConfig

__all__ = ["BudgetPlanner", "scale_schedule"]


def scale_schedule(base: TrainConfig, total_steps: int) -> TrainConfig:
    """``base`` with ``steps = total_steps`` and warm-up, adversarial start, validation and
    checkpoint intervals scaled by ``total_steps / base.steps`` (each at least 1 where the base
    has it, 0 stays 0 = off)."""
    total_steps = max(1, int(total_steps))
    ratio = total_steps / max(1, base.steps)

    def scaled(value: int) -> int:
        return 0 if value <= 0 else max(1, round(value * ratio))

    return replace(
        base,
        steps=total_steps,
        warmup_steps=scaled(base.warmup_steps),
        adv_start_step=scaled(base.adv_start_step) if base.adv_start_step < base.steps else total_steps + 1,
        val_every=scaled(base.val_every),
        ckpt_every=scaled(base.ckpt_every),
    )


@dataclass
class BudgetPlanner:
    """Plans how many steps fit before ``deadline`` (seconds, same clock as the ``now`` given).

    Attributes:
        deadline: when training must be over (the final validation and save included).
        probe_steps: steps timed before the first plan (the first step, which includes start-up
            costs such as allocator warm-up and the data pipeline's first batch, is not timed).
        reserve_s: time kept back for the final validation + checkpoint (updated by the trainer
            with the measured cost of one validation).
        max_change: after the first plan, a re-plan moves the total by at most this factor, so
            one slow window (a validation, a busy machine) does not jerk the learning rate.
    """

    deadline: float
    probe_steps: int = 10
    reserve_s: float = 0.0
    max_change: float = 1.25
    total: int = 0  # 0 = not planned yet
    _t0: float = -1.0
    _s0: int = 0

    def observe(self, step: int, now: float, replan: bool = True) -> int:
        """Record that ``step`` steps are done at ``now``; returns the planned total (0 while
        probing). Called after every step: past the deadline the current step becomes the last;
        otherwise the total is re-planned when ``replan`` (and always for the first plan, which
        comes after ``probe_steps`` timed steps or a tenth of the budget, whichever is first).
        The rate is the mean since the first timed step."""
        if self._t0 < 0:
            self._t0, self._s0 = now, step
            return self.total
        if now >= self.deadline:
            self.total = step  # out of time: this is the last step
            return self.total
        done = step - self._s0
        probing = self.total == 0
        if probing and done < self.probe_steps and (now - self._t0) < 0.1 * (self.deadline - self._t0):
            return 0
        if not (replan or probing):
            return self.total
        rate = done / max(now - self._t0, 1e-9)
        fits = step + int(rate * max(0.0, self.deadline - now - self.reserve_s))
        if probing:
            self.total = max(step + 1, fits)
        else:
            low, high = int(self.total / self.max_change), int(self.total * self.max_change)
            self.total = max(step + 1, min(high, max(low, fits)))
        return self.total
