from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define

if TYPE_CHECKING:
    from ..models.model_ref import ModelRef


T = TypeVar("T", bound="Preview")


@_attrs_define
class Preview:
    """Noisy copies and their denoised versions, as PNG data URLs. The noise is fresh randomness,
    never the secret noise of a certification.

        Attributes:
            denoised (list[str]):
            denoiser (ModelRef):
            noisy (list[str]):
            sigma (float):
    """

    denoised: list[str]
    denoiser: ModelRef
    noisy: list[str]
    sigma: float

    def to_dict(self) -> dict[str, Any]:
        denoised = self.denoised

        denoiser = self.denoiser.to_dict()

        noisy = self.noisy

        sigma = self.sigma

        field_dict: dict[str, Any] = {}

        field_dict.update(
            {
                "denoised": denoised,
                "denoiser": denoiser,
                "noisy": noisy,
                "sigma": sigma,
            }
        )

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.model_ref import ModelRef  # noqa: PLC0415

        d = dict(src_dict)
        denoised = cast(list[str], d.pop("denoised"))

        denoiser = ModelRef.from_dict(d.pop("denoiser"))

        noisy = cast(list[str], d.pop("noisy"))

        sigma = d.pop("sigma")

        preview = cls(
            denoised=denoised,
            denoiser=denoiser,
            noisy=noisy,
            sigma=sigma,
        )

        return preview
