"""Reward-hacking guard: monitors the run is never trained on, a stop rule and the best checkpoint.

ReFL-style methods over-optimise: the trained reward keeps rising while images drift into what
pleases it and looks wrong. Monitor scorers (other reward models) are scored on the validation
images at every validation; when one falls, the generator is gaming the reward.

Rules (``MonitorGuard``):
- a monitor's reference is its mean at the first validation (step 0 of the run);
- each monitor may have its own drop limit (``DropLimit``): an amount on the monitor's own scale
  (CLIP scores sit near 20-30, Aesthetic near 5) or a fraction of its reference ("5%");
- the run *stops* at the first validation where some monitor's mean is more than its limit below
  its reference;
- the *best* validation is the one with the highest mean trained reward among validations where
  no monitor has dropped by more than its limit (ties keep the earlier); its weights are kept.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

DropSpec = float | str | Sequence[str] | Mapping[str, float | str] | None


@dataclass(frozen=True)
class DropLimit:
    """How far a monitor may fall below its reference: ``amount`` on the monitor's own scale, or,
    when ``relative``, that fraction of the reference's magnitude."""

    amount: float
    relative: bool = False

    @classmethod
    def parse(cls, value: float | str | DropLimit) -> DropLimit:
        """``0.5`` or ``"0.5"``: an absolute drop; ``"5%"``: 5% of the reference."""
        if isinstance(value, DropLimit):
            return value
        text = str(value).strip()
        relative = text.endswith("%")
        try:
            amount = float(text[:-1] if relative else text)
        except ValueError:
            raise ValueError(f"drop limit {value!r}: give a number (e.g. 0.5) or a percentage (e.g. 5%)") from None
        if not math.isfinite(amount) or amount < 0:
            raise ValueError(f"drop limit {value!r} must be a finite number >= 0")
        return cls(amount / 100 if relative else amount, relative)

    def allowed(self, reference: float) -> float:
        """The largest allowed fall below ``reference``."""
        return self.amount * abs(reference) if self.relative else self.amount

    def __str__(self) -> str:
        return f"{self.amount * 100:g}% of the start" if self.relative else f"{self.amount:g}"


def parse_drop_limits(spec: DropSpec, monitors: Sequence[str] = ()) -> tuple[DropLimit | None, dict[str, DropLimit]]:
    """The default limit and the per-monitor limits of a stop rule.

    Args:
        spec: ``None`` (no stop rule); one limit for every monitor (``0.05``, ``"0.05"``, ``"5%"``);
            a mapping monitor name -> limit; or a list of ``"NAME=LIMIT"`` items and at most one bare
            ``LIMIT`` (the default for monitors not named), as ``--stop-when-monitor-drops`` takes them.
        monitors: the monitor names; a limit naming another monitor is an error (when given).
    Returns:
        (default limit or ``None``, name -> limit).
    """
    if spec is None:
        return None, {}
    if isinstance(spec, (int, float, str)):
        spec = [str(spec)]
    if isinstance(spec, Mapping):
        items = [(str(name), value) for name, value in spec.items()]
    else:
        items = [(name if separator else None, value)
                 for name, separator, value in (str(item).rpartition("=") for item in spec)]
    default, limits = None, {}
    for name, value in items:
        limit = DropLimit.parse(value)
        if name is None:
            if default is not None:
                raise ValueError(f"stop rule {list(spec)}: more than one limit without a monitor name")
            default = limit
        else:
            if monitors and name not in monitors:
                raise ValueError(f"stop rule names {name!r}, which is not a monitor ({', '.join(monitors)})")
            limits[name] = limit
    if default is None and not limits:
        raise ValueError("the stop rule gives no limit")
    return default, limits


@dataclass
class MonitorGuard:
    """Tracks monitor references, the best validation and whether the run must stop.

    Attributes:
        default_limit: the drop limit of monitors without their own (None: they never stop the run).
        limits: monitor name -> its own drop limit.
        reference: monitor name -> mean at the first validation.
        best_step, best_reward: the best validation so far (see the module rules).
        stopped_at: the step whose validation triggered the stop, if any.
        reason: a sentence saying which monitor fell, by how much.
    """

    default_limit: DropLimit | None = None
    limits: dict[str, DropLimit] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    best_reward: float | None = None
    stopped_at: int | None = None
    reason: str | None = None

    @classmethod
    def from_spec(cls, spec: DropSpec, monitors: Sequence[str] = ()) -> MonitorGuard:
        default, limits = parse_drop_limits(spec, monitors)
        return cls(default, limits)

    @property
    def active(self) -> bool:
        """Whether any monitor has a limit (a stop rule and a best checkpoint)."""
        return self.default_limit is not None or bool(self.limits)

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def limit_of(self, name: str) -> DropLimit | None:
        return self.limits.get(name, self.default_limit)

    def drops(self, monitors: dict[str, float]) -> dict[str, float]:
        """How far each monitor is below its reference (negative: above)."""
        return {name: self.reference[name] - value for name, value in monitors.items() if name in self.reference}

    def observe(self, step: int, mean_reward: float, monitors: dict[str, float]) -> bool:
        """Record one validation; returns whether it is the new best. Sets ``stopped_at`` on a drop."""
        for name, value in monitors.items():
            self.reference.setdefault(name, value)
        if not self.active:
            return False
        fallen = {}
        for name, drop in self.drops(monitors).items():
            limit = self.limit_of(name)
            if limit is not None and drop > limit.allowed(self.reference[name]):
                fallen[name] = drop
        if fallen:
            name, drop = max(fallen.items(), key=lambda item: item[1])
            self.stopped_at = step
            self.reason = (f"monitor {name!r} fell {drop:.4g} below its start {self.reference[name]:.4g} "
                           f"(limit {self.limit_of(name)}) at step {step}")
            return False
        if self.best_reward is None or mean_reward > self.best_reward:
            self.best_step, self.best_reward = step, mean_reward
            return True
        return False

    def state_dict(self) -> dict:
        """What a checkpoint keeps: references, best and stop (the limits come from the config)."""
        return {"reference": dict(self.reference), "best_step": self.best_step, "best_reward": self.best_reward,
                "stopped_at": self.stopped_at, "reason": self.reason}

    def load_state_dict(self, state: dict) -> None:
        for key in ("reference", "best_step", "best_reward", "stopped_at", "reason"):
            if key in state:
                setattr(self, key, state[key])
