from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.certificate import Certificate
from ...models.certify_form import CertifyForm
from ...models.certify_request import CertifyRequest
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: CertifyRequest | CertifyForm | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/certify",
    }

    if isinstance(body, CertifyRequest):
        _kwargs["json"] = body.to_dict()

        headers["Content-Type"] = "application/json"
    if isinstance(body, CertifyForm):
        _kwargs["files"] = body.to_multipart()

        headers["Content-Type"] = "multipart/form-data; boundary=+++"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Certificate | Problem | None:
    if response.status_code == 200:
        response_200 = Certificate.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = Problem.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = Problem.from_dict(response.json())

        return response_401

    if response.status_code == 413:
        response_413 = Problem.from_dict(response.json())

        return response_413

    if response.status_code == 415:
        response_415 = Problem.from_dict(response.json())

        return response_415

    if response.status_code == 422:
        response_422 = Problem.from_dict(response.json())

        return response_422

    if response.status_code == 429:
        response_429 = Problem.from_dict(response.json())

        return response_429

    if response.status_code == 502:
        response_502 = Problem.from_dict(response.json())

        return response_502

    if response.status_code == 503:
        response_503 = Problem.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[Certificate | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: CertifyRequest | CertifyForm | Unset = UNSET,
) -> Response[Certificate | Problem]:
    """Certify

     Certify an image: the smoothed label and the L2 radius within which it cannot change.

    For large n prefer `POST /v1/jobs`, which answers at once and reports progress. The body
    may also be `multipart/form-data`: the image as a file field `image`, the other fields as
    form fields.

    Args:
        body (CertifyRequest):
        body (CertifyForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Certificate | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient,
    body: CertifyRequest | CertifyForm | Unset = UNSET,
) -> Certificate | Problem | None:
    """Certify

     Certify an image: the smoothed label and the L2 radius within which it cannot change.

    For large n prefer `POST /v1/jobs`, which answers at once and reports progress. The body
    may also be `multipart/form-data`: the image as a file field `image`, the other fields as
    form fields.

    Args:
        body (CertifyRequest):
        body (CertifyForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Certificate | Problem
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: CertifyRequest | CertifyForm | Unset = UNSET,
) -> Response[Certificate | Problem]:
    """Certify

     Certify an image: the smoothed label and the L2 radius within which it cannot change.

    For large n prefer `POST /v1/jobs`, which answers at once and reports progress. The body
    may also be `multipart/form-data`: the image as a file field `image`, the other fields as
    form fields.

    Args:
        body (CertifyRequest):
        body (CertifyForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Certificate | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: CertifyRequest | CertifyForm | Unset = UNSET,
) -> Certificate | Problem | None:
    """Certify

     Certify an image: the smoothed label and the L2 radius within which it cannot change.

    For large n prefer `POST /v1/jobs`, which answers at once and reports progress. The body
    may also be `multipart/form-data`: the image as a file field `image`, the other fields as
    form fields.

    Args:
        body (CertifyRequest):
        body (CertifyForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Certificate | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
