"""OpenAPI request bodies of the routes that read an image, and the problems each route can
answer with.

The routes accept JSON (a base64 image) and multipart uploads alike, and the document describes
both: ``<Name>Request`` for JSON and ``<Name>Form`` for ``multipart/form-data`` (the image a
file field, the other fields form fields, ``label_map`` a JSON string). The generated Python SDK
takes either as its ``body`` (openapi-python-client 0.29 forgets to import ``Unset`` in such
operations: ``make clients`` adds the import).
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from service.api.problems import Problem
from service.api.schemas import (
    CertifyEstimateRequest,
    CertifyRequest,
    JobRequest,
    PredictRequest,
    PreviewRequest,
)

__all__ = [
    "CATALOG_PROBLEMS",
    "ESTIMATE_PROBLEMS",
    "EXTRA_SCHEMAS",
    "FORMS",
    "JOB_PROBLEMS",
    "NEW_JOB_PROBLEMS",
    "PREVIEW_PROBLEMS",
    "SAMPLING_PROBLEMS",
    "USAGE_PROBLEMS",
    "form_schemas",
    "image_body",
]

# Schemas the routes reference by hand (their bodies are parsed by read_image_request).
EXTRA_SCHEMAS: list[type[BaseModel]] = [
    Problem,
    CertifyRequest,
    PredictRequest,
    JobRequest,
    PreviewRequest,
    CertifyEstimateRequest,
]
# The problems each operation can answer with (``problem_responses`` documents them): a status
# stands for all its registered types, a slug for one. 499 (the client went away) is never
# documented: nobody reads it.
# Every route behind an API key: the key, its request rate (counted in Redis where configured).
KEYED = ("unauthorised", "rate-limited", "backend-unavailable")
CATALOG_PROBLEMS = KEYED
USAGE_PROBLEMS = KEYED
JOB_PROBLEMS = (*KEYED, "job-not-found")
# Reading and checking an image request (read_image_request, Services.prepare) and admitting it.
_PREPARED = (
    *KEYED, 400, 413, 415, 422,
    "daily-budget-exhausted", "monthly-spend-exhausted", "too-many-concurrent-requests",
    "server-busy", "vendor-unavailable",
)  # fmt: skip
# POST /v1/certify and /v1/predict also sample within the request (Services._run).
SAMPLING_PROBLEMS = (*_PREPARED, 502, "no-workers", "vendor-model-changed")
# POST /v1/jobs samples in the background: those failures land in the job's `error`.
NEW_JOB_PROBLEMS = (*_PREPARED, "too-many-jobs")
# POST /v1/certify/estimate: the checks of Services.prepare up to the work check (the image
# optional); nothing is admitted, booked or sampled.
ESTIMATE_PROBLEMS = (*KEYED, 400, 413, 415, 422, "vendor-unavailable")
# POST /v1/preview: the denoiser alone, no classifier and no work check.
PREVIEW_PROBLEMS = (
    *KEYED, 400, "upload-too-large", "image-too-large", 415,
    "invalid-parameters", "image-empty", "image-corrupt", "unknown-denoiser",
    "no-denoiser-for-sigma", "daily-budget-exhausted", "too-many-concurrent-requests",
    "server-busy",
)  # fmt: skip
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
                "multipart/form-data": {
                    "schema": {"$ref": f"#/components/schemas/{_form_name(json_model)}"},
                    "example": {**example, "image": "(the image file: PNG, JPEG, WebP, BMP, GIF)"},
                },
            },
        }
    }


# The JSON request models whose multipart twins ``form_schemas`` derives.
FORMS: list[type[BaseModel]] = [
    CertifyRequest,
    PredictRequest,
    JobRequest,
    PreviewRequest,
    CertifyEstimateRequest,
]


def _form_name(json_model: type[BaseModel]) -> str:
    return json_model.__name__.removesuffix("Request") + "Form"


def form_schemas(schemas: dict[str, Any]) -> dict[str, Any]:
    """The ``multipart/form-data`` schemas of the image requests, from their JSON schemas in
    ``schemas`` (the document's components): the image a binary file, ``label_map`` a string."""
    forms: dict[str, Any] = {}
    for model in FORMS:
        form = copy.deepcopy(schemas[model.__name__])
        form["title"] = _form_name(model)
        form["properties"]["image"] = {
            "type": "string",
            "format": "binary",
            "description": "the image file (PNG, JPEG, WebP, BMP, GIF)",
        }
        if "label_map" in form["properties"]:
            form["properties"]["label_map"] = {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "description": "vendor label key -> class key, as a JSON object",
            }
        forms[form["title"]] = form
    return forms
