"""Fake AWS Rekognition DetectLabels: verifies SigV4 signatures with botocore, AWS error bodies."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import io
import json
import re
import uuid

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from service.testing.fakes.common import MALFORMED, FakeState, fake_app, misbehave, run_standalone
from service.testing.fakes.labeler import Guess

SECRETS = {"AKIDFAKE": "fake-secret-key"}  # access key id -> secret access key
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=(?P<akid>[^/]+)/(?P<date>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, ?SignedHeaders=(?P<signed>[^,]+), ?"
    r"Signature=(?P<sig>[0-9a-f]+)"
)


def _error(kind: str, message: str, status: int = 400) -> JSONResponse:
    body = {"__type": kind, "Code": kind, "Message": message}
    return JSONResponse(
        body, status, headers={"x-amzn-RequestId": str(uuid.uuid4())},
        media_type="application/x-amz-json-1.1",
    )  # fmt: skip


def _with_ancestors(guesses: list[Guess]) -> list[dict[str, object]]:
    """DetectLabels' hierarchical answer: each label names its ``Parents``, and the ancestors are
    labels of their own at the confidence of their best descendant ("Tabby Cat" 93.1 with parent
    "Cat", and "Cat" 93.1): here a name of several words has its last word as its parent."""
    confidence: dict[str, float] = {}
    parents: dict[str, list[str]] = {}
    for g in guesses:
        name = g.name.title()
        chain = [name, name.rsplit(" ", 1)[1]] if " " in name else [name]
        for label, above in zip(chain, [chain[1:], []], strict=False):
            confidence[label] = max(confidence.get(label, 0.0), round(100 * g.score, 4))
            parents.setdefault(label, above)
    return [
        {"Name": label, "Confidence": confidence[label], "Instances": [], "Aliases": [],
         "Parents": [{"Name": p} for p in parents[label]], "Categories": []}
        for label in sorted(confidence, key=lambda label: -confidence[label])
    ]  # fmt: skip


def verify_sigv4(request: Request, body: bytes, secrets: dict[str, str]) -> str | None:
    """None when the signature is valid; else the AWS error type to answer with."""
    match = _AUTH.fullmatch(request.headers.get("authorization", ""))
    if match is None:
        return "MissingAuthenticationTokenException"
    secret = secrets.get(match["akid"])
    if secret is None:
        return "UnrecognizedClientException"
    stamp = request.headers.get("x-amz-date", "")
    try:
        when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "IncompleteSignatureException"
    if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > 300:
        return "InvalidSignatureException"  # signature expired
    signed = match["signed"].split(";")
    headers = {name: request.headers.get(name, "") for name in signed}
    url = f"https://{request.headers.get('host', '')}{request.url.path}"
    if request.url.query:
        url += f"?{request.url.query}"
    aws_request = AWSRequest(method=request.method, url=url, data=body, headers=headers)
    aws_request.context["timestamp"] = stamp
    signer = SigV4Auth(Credentials(match["akid"], secret), match["service"], match["region"])
    canonical = signer.canonical_request(aws_request)
    expected = signer.signature(signer.string_to_sign(aws_request, canonical), aws_request)
    return None if hmac.compare_digest(expected, match["sig"]) else "InvalidSignatureException"


# How Rekognition refuses credentials (JSON protocol errors, ``__type`` names the error).
REFUSALS: dict[str, tuple[str, str, int]] = {
    "UnrecognizedClientException": (
        "UnrecognizedClientException", "The security token included in the request is invalid.",
        400,
    ),
    "InvalidSignatureException": (
        "InvalidSignatureException", "The request signature we calculated does not match the "
        "signature you provided.", 400,
    ),
    "ExpiredTokenException": (
        "ExpiredTokenException", "The security token included in the request is expired", 400
    ),
    "AccessDeniedException": (
        "AccessDeniedException", "User is not authorized to perform: rekognition:DetectLabels",
        400,
    ),
}  # fmt: skip


def build(state: FakeState, secrets: dict[str, str] | None = None) -> Starlette:
    keys = secrets or SECRETS

    async def dispatch(request: Request) -> Response:
        state.calls += 1
        body = await request.body()
        state.log.append({"target": request.headers.get("x-amz-target")})
        if state.faults.refusal:
            return _error(*REFUSALS[state.faults.refusal])
        problem = verify_sigv4(request, body, keys)
        if problem == "UnrecognizedClientException":
            return _error(problem, "The security token included in the request is invalid.")
        if problem is not None:
            return _error(
                problem, "The request signature we calculated does not match the signature you "
                "provided. Check your AWS Secret Access Key and signing method.", 403,
            )  # fmt: skip
        if request.headers.get("x-amz-target") != "RekognitionService.DetectLabels":
            return _error("UnknownOperationException", "Unknown operation.")
        akid = request.headers["authorization"].split("Credential=")[1].split("/")[0]
        if not state.admit(akid):
            state.throttled += 1
            return _error("ThrottlingException", "Rate exceeded")
        fault = await misbehave(state)
        if fault == "throttle":
            state.throttled += 1
            return _error("ProvisionedThroughputExceededException", "Provisioned rate exceeded.")
        if fault == "error":
            return _error("InternalServerError", "Internal server error.", 500)
        if fault == "malformed":
            return MALFORMED
        try:
            payload = json.loads(body)
            image = base64.b64decode(payload["Image"]["Bytes"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return _error("InvalidParameterException", "Request has invalid parameters.")
        if len(image) > 5 * 1024 * 1024:
            return _error("ImageTooLargeException", "Image size is too large.")
        try:
            with Image.open(io.BytesIO(image)) as opened:
                size, image_format = opened.size, opened.format
        except (UnidentifiedImageError, OSError):
            return _error("InvalidImageFormatException", "Request has invalid image format.")
        if image_format not in ("PNG", "JPEG"):
            return _error("InvalidImageFormatException", "Request has invalid image format.")
        if min(size) < 80:
            return _error("InvalidParameterException", "Image dimensions are below 80 pixels.")
        min_confidence = float(payload.get("MinConfidence", 55))
        max_labels = int(payload.get("MaxLabels", 1000))
        state.images += 1
        guesses = [
            g for g in state.labeler.top(image, k=max_labels) if 100 * g.score >= min_confidence
        ]
        labels = _with_ancestors(guesses)[:max_labels]
        return JSONResponse(
            {"Labels": labels, "LabelModelVersion": "3.0"},
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
            media_type="application/x-amz-json-1.1",
        )

    return fake_app(state, [("/", dispatch)])


if __name__ == "__main__":
    run_standalone(build, "fake AWS Rekognition (access key AKIDFAKE / fake-secret-key)")
