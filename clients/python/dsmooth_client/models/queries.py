from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Queries")


@_attrs_define
class Queries:
    """
    Attributes:
        total (int): classifier queries this result rests on
        cached (int | Unset): of which answered from the vote store Default: 0.
        failed (int | Unset): of which failed (each counted against the candidate) Default: 0.
    """

    total: int
    cached: int | Unset = 0
    failed: int | Unset = 0

    def to_dict(self) -> dict[str, Any]:
        total = self.total

        cached = self.cached

        failed = self.failed

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "total": total,
            }
        )
        if cached is not UNSET:
            field_dict["cached"] = cached
        if failed is not UNSET:
            field_dict["failed"] = failed

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        total = d.pop("total")

        cached = d.pop("cached", UNSET)

        failed = d.pop("failed", UNSET)

        queries = cls(
            total=total,
            cached=cached,
            failed=failed,
        )

        return queries
