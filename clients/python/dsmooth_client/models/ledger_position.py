from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define

T = TypeVar("T", bound="LedgerPosition")


@_attrs_define
class LedgerPosition:
    """Where the certificate stands among those the service issued for its image and base
    classifier (rule 9).

        Attributes:
            alpha_spent (float): the failure probability this certificate was computed at: alpha times 6 / (pi^2 stream^2),
                so that all certificates for the image together stay within alpha
            issued_before (int): certificates issued for them before this one
            stream (int): its stream's number for this image and classifier, from 1
    """

    alpha_spent: float
    issued_before: int
    stream: int

    def to_dict(self) -> dict[str, Any]:
        alpha_spent = self.alpha_spent

        issued_before = self.issued_before

        stream = self.stream

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "alpha_spent": alpha_spent,
                "issued_before": issued_before,
                "stream": stream,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        alpha_spent = d.pop("alpha_spent")

        issued_before = d.pop("issued_before")

        stream = d.pop("stream")

        ledger_position = cls(
            alpha_spent=alpha_spent,
            issued_before=issued_before,
            stream=stream,
        )

        return ledger_position
