from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from ..types import UNSET, Unset

T = TypeVar("T", bound="PreviewRequest")


@_attrs_define
class PreviewRequest:
    """
    Attributes:
        image (str): the image (PNG, JPEG, WebP, BMP, GIF), base64-encoded; a data: URL works too
        denoiser (None | str | Unset): catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling
            trained for the requested sigma where one is served
        k (int | Unset): copies to show Default: 8.
        sigma (float | Unset): noise level in (0, 1] pixel units Default: 0.25.
    """

    image: str
    denoiser: None | str | Unset = UNSET
    k: int | Unset = 8
    sigma: float | Unset = 0.25

    def to_dict(self) -> dict[str, Any]:
        image = self.image

        denoiser: None | str | Unset
        if isinstance(self.denoiser, Unset):
            denoiser = UNSET
        else:
            denoiser = self.denoiser

        k = self.k

        sigma = self.sigma

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "image": image,
            }
        )
        if denoiser is not UNSET:
            field_dict["denoiser"] = denoiser
        if k is not UNSET:
            field_dict["k"] = k
        if sigma is not UNSET:
            field_dict["sigma"] = sigma

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        image = d.pop("image")

        def _parse_denoiser(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        denoiser = _parse_denoiser(d.pop("denoiser", UNSET))

        k = d.pop("k", UNSET)

        sigma = d.pop("sigma", UNSET)

        preview_request = cls(
            image=image,
            denoiser=denoiser,
            k=k,
            sigma=sigma,
        )

        return preview_request
