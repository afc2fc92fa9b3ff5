from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

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
        card_version (None | str | Unset): the version its model card declares (a model file's certificates name the
            file's SHA-256 digest, and the card's where there is one)
        images (None | str | Unset): the kind of images it was made for (its domain); results on images far from it
            carry warnings. null: not declared
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
    card_version: None | str | Unset = UNSET
    images: None | str | Unset = UNSET
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

        card_version: None | str | Unset
        if isinstance(self.card_version, Unset):
            card_version = UNSET
        else:
            card_version = self.card_version

        images: None | str | Unset
        if isinstance(self.images, Unset):
            images = UNSET
        else:
            images = self.images

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
        if card_version is not UNSET:
            field_dict["card_version"] = card_version
        if images is not UNSET:
            field_dict["images"] = images

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

        def _parse_card_version(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        card_version = _parse_card_version(d.pop("card_version", UNSET))

        def _parse_images(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        images = _parse_images(d.pop("images", UNSET))

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
            card_version=card_version,
            images=images,
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
