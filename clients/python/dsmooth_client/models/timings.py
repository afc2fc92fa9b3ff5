from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Timings")


@_attrs_define
class Timings:
    """
    Attributes:
        total_s (float):
        estimation_s (float | Unset):  Default: 0.0.
        selection_s (float | Unset):  Default: 0.0.
    """

    total_s: float
    estimation_s: float | Unset = 0.0
    selection_s: float | Unset = 0.0

    def to_dict(self) -> dict[str, Any]:
        total_s = self.total_s

        estimation_s = self.estimation_s

        selection_s = self.selection_s

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "total_s": total_s,
            }
        )
        if estimation_s is not UNSET:
            field_dict["estimation_s"] = estimation_s
        if selection_s is not UNSET:
            field_dict["selection_s"] = selection_s

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        total_s = d.pop("total_s")

        estimation_s = d.pop("estimation_s", UNSET)

        selection_s = d.pop("selection_s", UNSET)

        timings = cls(
            total_s=total_s,
            estimation_s=estimation_s,
            selection_s=selection_s,
        )

        return timings
