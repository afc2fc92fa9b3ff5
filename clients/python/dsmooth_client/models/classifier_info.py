from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="ClassifierInfo")


@_attrs_define
class ClassifierInfo:
    """
    Attributes:
        architecture (str):
        classes (int | None): number of classes; null: open vocabulary
        credentials_configured (bool): whether the classifier can be queried
        default (bool):
        input_size (int | None): side the copies are resized to; null: any
        kind (str): 'local' (served here) or 'remote' (a vendor API)
        max_n (int): cap on n0 + n per request
        name (str):
        price_per_query (float): USD per query
        version (str):
    """

    architecture: str
    classes: int | None
    credentials_configured: bool
    default: bool
    input_size: int | None
    kind: str
    max_n: int
    name: str
    price_per_query: float
    version: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        architecture = self.architecture

        classes: int | None
        classes = self.classes

        credentials_configured = self.credentials_configured

        default = self.default

        input_size: int | None
        input_size = self.input_size

        kind = self.kind

        max_n = self.max_n

        name = self.name

        price_per_query = self.price_per_query

        version = self.version

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "architecture": architecture,
                "classes": classes,
                "credentials_configured": credentials_configured,
                "default": default,
                "input_size": input_size,
                "kind": kind,
                "max_n": max_n,
                "name": name,
                "price_per_query": price_per_query,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        architecture = d.pop("architecture")

        def _parse_classes(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        classes = _parse_classes(d.pop("classes"))

        credentials_configured = d.pop("credentials_configured")

        default = d.pop("default")

        def _parse_input_size(data: object) -> int | None:
            if data is None:
                return data
            return cast(int | None, data)

        input_size = _parse_input_size(d.pop("input_size"))

        kind = d.pop("kind")

        max_n = d.pop("max_n")

        name = d.pop("name")

        price_per_query = d.pop("price_per_query")

        version = d.pop("version")

        classifier_info = cls(
            architecture=architecture,
            classes=classes,
            credentials_configured=credentials_configured,
            default=default,
            input_size=input_size,
            kind=kind,
            max_n=max_n,
            name=name,
            price_per_query=price_per_query,
            version=version,
        )

        classifier_info.additional_properties = d
        return classifier_info

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
