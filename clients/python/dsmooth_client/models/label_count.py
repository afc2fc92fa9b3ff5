from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="LabelCount")


@_attrs_define
class LabelCount:
    """
    Attributes:
        count (int):
        key (str):
        label (str):
    """

    count: int
    key: str
    label: str

    def to_dict(self) -> dict[str, Any]:
        count = self.count

        key = self.key

        label = self.label

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "count": count,
                "key": key,
                "label": label,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        count = d.pop("count")

        key = d.pop("key")

        label = d.pop("label")

        label_count = cls(
            count=count,
            key=key,
            label=label,
        )

        return label_count
