from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

T = TypeVar("T", bound="DenoiserInfo")


@_attrs_define
class DenoiserInfo:
    """
    Attributes:
        architecture (str):
        default (bool):
        name (str):
        objective (None | str):
        sigma (float | None): noise level it was trained for; null: any
        version (str):
    """

    architecture: str
    default: bool
    name: str
    objective: None | str
    sigma: float | None
    version: str
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        architecture = self.architecture

        default = self.default

        name = self.name

        objective: None | str
        objective = self.objective

        sigma: float | None
        sigma = self.sigma

        version = self.version

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "architecture": architecture,
                "default": default,
                "name": name,
                "objective": objective,
                "sigma": sigma,
                "version": version,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        architecture = d.pop("architecture")

        default = d.pop("default")

        name = d.pop("name")

        def _parse_objective(data: object) -> None | str:
            if data is None:
                return data
            return cast(None | str, data)

        objective = _parse_objective(d.pop("objective"))

        def _parse_sigma(data: object) -> float | None:
            if data is None:
                return data
            return cast(float | None, data)

        sigma = _parse_sigma(d.pop("sigma"))

        version = d.pop("version")

        denoiser_info = cls(
            architecture=architecture,
            default=default,
            name=name,
            objective=objective,
            sigma=sigma,
            version=version,
        )

        denoiser_info.additional_properties = d
        return denoiser_info

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
