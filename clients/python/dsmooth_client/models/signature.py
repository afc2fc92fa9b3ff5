from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="Signature")


@_attrs_define
class Signature:
    """Ed25519 over the RFC 8785 canonical JSON of the certificate without this member and
    without nulls; the key is published at GET /v1/signing-keys under ``kid``.

        Attributes:
            kid (str):
            value (str): base64url
            alg (Literal['EdDSA'] | Unset):  Default: 'EdDSA'.
    """

    kid: str
    value: str
    alg: Literal["EdDSA"] | Unset = "EdDSA"

    def to_dict(self) -> dict[str, Any]:
        kid = self.kid

        value = self.value

        alg = self.alg

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "kid": kid,
                "value": value,
            }
        )
        if alg is not UNSET:
            field_dict["alg"] = alg

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        kid = d.pop("kid")

        value = d.pop("value")

        alg = cast(Literal["EdDSA"] | Unset, d.pop("alg", UNSET))
        if alg != "EdDSA" and not isinstance(alg, Unset):
            raise ValueError(f"alg must match const 'EdDSA', got '{alg}'")

        signature = cls(
            kid=kid,
            value=value,
            alg=alg,
        )

        return signature
