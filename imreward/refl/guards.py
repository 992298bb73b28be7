"""Reward-hacking guard: monitors the run is never trained on, a stop rule and the best checkpoint.

ReFL-style methods over-optimise: the trained reward keeps rising while images drift into what
pleases it and looks wrong. Monitor scorers (other reward models) are scored on the validation
images at every validation; when one falls, the generator is gaming the reward.

Rules (``MonitorGuard``):
- a monitor's reference is its mean at the first validation (step 0 of the run);
- the run *stops* at the first validation where some monitor's mean is more than ``max_drop``
  below its reference;
- the *best* validation is the one with the highest mean trained reward among validations where
  no monitor has dropped by more than ``max_drop`` (ties keep the earlier); its weights are kept.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class MonitorGuard:
    """Tracks monitor references, the best validation and whether the run must stop.

    Attributes:
        max_drop: the largest allowed fall of a monitor below its reference (None: never stop).
        reference: monitor name -> mean at the first validation.
        best_step, best_reward: the best validation so far (see the module rules).
        stopped_at: the step whose validation triggered the stop, if any.
        reason: a sentence saying which monitor fell, by how much.
    """

    max_drop: float | None = None
    reference: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    best_reward: float | None = None
    stopped_at: int | None = None
    reason: str | None = None

    @property
    def stopped(self) -> bool:
        return self.stopped_at is not None

    def drops(self, monitors: dict[str, float]) -> dict[str, float]:
        """How far each monitor is below its reference (negative: above)."""
        return {name: self.reference[name] - value for name, value in monitors.items() if name in self.reference}

    def observe(self, step: int, mean_reward: float, monitors: dict[str, float]) -> bool:
        """Record one validation; returns whether it is the new best. Sets ``stopped_at`` on a drop."""
        for name, value in monitors.items():
            self.reference.setdefault(name, value)
        if self.max_drop is None:
            return False
        fallen = {name: drop for name, drop in self.drops(monitors).items() if drop > self.max_drop}
        if fallen:
            name, drop = max(fallen.items(), key=lambda item: item[1])
            self.stopped_at = step
            self.reason = (f"monitor {name!r} fell {drop:.4g} below its start {self.reference[name]:.4g} "
                           f"(limit {self.max_drop:g}) at step {step}")
            return False
        if self.best_reward is None or mean_reward > self.best_reward:
            self.best_step, self.best_reward = step, mean_reward
            return True
        return False

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        for key, value in state.items():
            setattr(self, key, value)
