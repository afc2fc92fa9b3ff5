from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define

from .. import types
from ..types import UNSET, File, Unset

T = TypeVar("T", bound="PreviewForm")


@_attrs_define
class PreviewForm:
    """
    Attributes:
        image (File): the image file (PNG, JPEG, WebP, BMP, GIF)
        denoiser (None | str | Unset): catalog name (GET /v1/denoisers); default: the default denoiser, or its sibling
            trained for the requested sigma where one is served
        k (int | Unset): copies to show Default: 8.
        sigma (float | Unset): noise level in (0, 1] pixel units Default: 0.25.
    """

    image: File
    denoiser: None | str | Unset = UNSET
    k: int | Unset = 8
    sigma: float | Unset = 0.25

    def to_dict(self) -> dict[str, Any]:
        image = self.image.to_tuple()

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

    def to_multipart(self) -> types.RequestFiles:
        files: types.RequestFiles = []

        files.append(("image", self.image.to_tuple()))

        if not isinstance(self.denoiser, Unset):
            if isinstance(self.denoiser, str):
                files.append(("denoiser", (None, str(self.denoiser).encode(), "text/plain")))
            else:
                files.append(("denoiser", (None, str(self.denoiser).encode(), "text/plain")))

        if not isinstance(self.k, Unset):
            files.append(("k", (None, str(self.k).encode(), "text/plain")))

        if not isinstance(self.sigma, Unset):
            files.append(("sigma", (None, str(self.sigma).encode(), "text/plain")))

        return files

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        image = File(payload=BytesIO(d.pop("image")))

        def _parse_denoiser(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        denoiser = _parse_denoiser(d.pop("denoiser", UNSET))

        k = d.pop("k", UNSET)

        sigma = d.pop("sigma", UNSET)

        preview_form = cls(
            image=image,
            denoiser=denoiser,
            k=k,
            sigma=sigma,
        )

        return preview_form
