"""Reading a request body: JSON with a base64 image, or a multipart upload, with size limits."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Literal, TypeVar, overload

import pydantic_core
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.problems import MEDIA_TYPE, ProblemError, problem_body, shorten

__all__ = ["BodySizeLimit", "read_image_request"]

Options = TypeVar("Options", bound=BaseModel)
URLENCODED = "application/x-www-form-urlencoded"


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        status=413,
        slug="upload-too-large",
        title="Upload too large",
        detail=f"the image must be at most {limit:,} bytes; send a smaller or more compressed "
        "image",
    )


@overload
async def read_image_request(
    request: Request,
    options: type[Options],
    max_image_bytes: int,
    *,
    image_required: Literal[True] = True,
) -> tuple[Options, bytes]: ...


@overload
async def read_image_request(
    request: Request, options: type[Options], max_image_bytes: int, *, image_required: bool
) -> tuple[Options, bytes | None]: ...


async def read_image_request(
    request: Request, options: type[Options], max_image_bytes: int, *, image_required: bool = True
) -> tuple[Options, bytes | None]:
    """Parse ``options`` and the image bytes from a JSON or multipart body.

    The other fields are validated before the image is read, so a bad parameter is reported
    without decoding megabytes first. With ``image_required=False`` a body without an image
    gives None (an image that is there is read and checked all the same).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    image: bytes | None = None
    # A form without a file (``curl -d``) is url-encoded: fine where no image is needed.
    forms = ["multipart/form-data"] + ([] if image_required else [URLENCODED])
    if content_type in forms:
        async with request.form(max_files=1, max_fields=32) as form:
            upload = form.get("image")
            if not isinstance(upload, UploadFile) and (image_required or upload is not None):
                raise _missing_image("a file field named 'image'")
            parsed = _validate(options, {k: v for k, v in form.items() if k != "image"})
            if isinstance(upload, UploadFile):
                image = await upload.read(max_image_bytes + 1)
    elif content_type in ("application/json", ""):
        body = _json_object(await request.body())
        encoded = body.pop("image", None)
        if not isinstance(encoded, str) and (image_required or encoded is not None):
            raise _missing_image("an 'image' field with the base64-encoded image")
        parsed = _validate(options, body)
        if isinstance(encoded, str):
            image = _decode_base64(encoded)
    else:
        raise ProblemError(
            status=415,
            slug="unsupported-content-type",
            title="Unsupported content type",
            detail=f"send application/json or multipart/form-data, not {shorten(content_type)!r}",
        )
    if image is not None and len(image) > max_image_bytes:
        raise _too_large(max_image_bytes)
    return parsed, image


def _validate(options: type[Options], fields: dict[str, object]) -> Options:
    try:
        return options.model_validate(fields)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from exc
    except RecursionError as exc:  # a validator's own json.loads of a deeply nested form field
        error = {
            "loc": ("body",),
            "msg": "a field's JSON is nested too deeply",
            "type": "value_error",
        }
        raise RequestValidationError([error]) from exc


def _json_object(raw: bytes) -> dict[str, object]:
    """The body as a JSON object, read by pydantic's parser: UTF-8 only, no NaN or Infinity,
    nesting bounded (its recursion limit), so that no body reaches Python's recursion limit."""
    try:
        body = pydantic_core.from_json(raw or b"null", allow_inf_nan=False)
    except ValueError as exc:  # the message names the position, never the content
        detail = f"the body is not valid JSON in UTF-8: {shorten(str(exc))}"
        raise ProblemError(
            status=400, slug="malformed-json", title="Malformed JSON", detail=detail
        ) from exc
    if not isinstance(body, dict):
        detail = "the body must be a JSON object"
        raise ProblemError(status=400, slug="malformed-json", title="Malformed JSON", detail=detail)
    return body


def _missing_image(what: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", "image"), "msg": f"Field required: send {what}", "type": "missing"}]
    )


def _decode_base64(encoded: str) -> bytes:
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestValidationError(
            [{"loc": ("body", "image"), "msg": f"not valid base64: {exc}", "type": "value_error"}]
        ) from exc


class BodySizeLimit:
    """Refuses request bodies above ``max_bytes``: by Content-Length up front (413), or while
    streaming (the route's read raises a 413 problem)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_problem(send, scope["path"], _too_large(self.max_bytes))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _too_large(self.max_bytes)
            return message

        await self.app(scope, limited, send)


async def _send_problem(send: Send, path: str, problem: ProblemError) -> None:
    body = json.dumps(problem_body(problem, path)).encode()
    headers = [(b"content-type", MEDIA_TYPE.encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": problem.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
