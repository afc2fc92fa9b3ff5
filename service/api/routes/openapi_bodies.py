"""OpenAPI request bodies of the routes that read an image.

The routes accept JSON (base64 image) and multipart uploads alike, but the document describes the
JSON form only: generated SDKs (openapi-python-client 0.2x) build broken multipart requests when
an operation offers both, and a base64 body is what an SDK user wants anyway. The multipart form
is described in each operation's text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from service.api.problems import Problem
from service.api.schemas import CertifyRequest, JobRequest, PredictRequest, PreviewRequest

__all__ = ["EXTRA_SCHEMAS", "image_body"]

# Schemas the routes reference by hand (their bodies are parsed by read_image_request).
EXTRA_SCHEMAS: list[type[BaseModel]] = [
    Problem,
    CertifyRequest,
    PredictRequest,
    JobRequest,
    PreviewRequest,
]
# A 1x1 grey PNG: small enough to paste, real enough to run.
EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNoaGgAAAMEAYFL09IQAAAAAElFTkSuQmCC"
)


def image_body(json_model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its body with ``read_image_request``."""
    example = {"image": EXAMPLE_IMAGE, "sigma": 0.25, "n": 1000}
    if "n0" in json_model.model_fields:
        example["n0"] = 100
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"$ref": f"#/components/schemas/{json_model.__name__}"},
                    "example": example,
                },
            },
        }
    }
