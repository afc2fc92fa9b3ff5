from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..models.bound_kind import BoundKind

T = TypeVar("T", bound="Bound")


@_attrs_define
class Bound:
    """The confidence bound p_lower is, so that a reader can recompute it from the counts.

    Attributes:
        alpha (float): the level it was computed at (per look, where spent)
        kind (BoundKind):
        successes (int): the candidate's count at the look that gave p_lower
        trials (int): the samples drawn by that look
    """

    alpha: float
    kind: BoundKind
    successes: int
    trials: int

    def to_dict(self) -> dict[str, Any]:
        alpha = self.alpha

        kind = self.kind.value

        successes = self.successes

        trials = self.trials

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "alpha": alpha,
                "kind": kind,
                "successes": successes,
                "trials": trials,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        alpha = d.pop("alpha")

        kind = BoundKind(d.pop("kind"))

        successes = d.pop("successes")

        trials = d.pop("trials")

        bound = cls(
            alpha=alpha,
            kind=kind,
            successes=successes,
            trials=trials,
        )

        return bound
