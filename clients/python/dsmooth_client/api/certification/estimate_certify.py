from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.certify_estimate_form import CertifyEstimateForm
from ...models.certify_estimate_request import CertifyEstimateRequest
from ...models.cost_estimate import CostEstimate
from ...models.problem import Problem
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: CertifyEstimateRequest | CertifyEstimateForm | Unset = UNSET,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/v1/certify/estimate",
    }

    if isinstance(body, CertifyEstimateRequest):
        _kwargs["json"] = body.to_dict()

        headers["Content-Type"] = "application/json"
    if isinstance(body, CertifyEstimateForm):
        _kwargs["files"] = body.to_multipart()

        headers["Content-Type"] = "multipart/form-data; boundary=+++"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> CostEstimate | Problem | None:
    if response.status_code == 200:
        response_200 = CostEstimate.from_dict(response.json())

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

    if response.status_code == 503:
        response_503 = Problem.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[CostEstimate | Problem]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient,
    body: CertifyEstimateRequest | CertifyEstimateForm | Unset = UNSET,
) -> Response[CostEstimate | Problem]:
    """Estimate Certify

     The worst-case and the expected queries and dollars of a `POST /v1/certify` with the same
    fields, checked as that request would be (invalid fields, unknown models, caps, `budget`,
    `max_cost`; with an image, its format, size and work). Free: it sends no query, books
    nothing on the key's budgets and draws no noise.

    The image is optional: a sequential plan's looks depend on its size only for images too
    large for 1,000 copies per chunk. The expectation is an estimate (`model` says how it was
    computed); the worst case is what budgets and limits are checked against.

    Args:
        body (CertifyEstimateRequest):
        body (CertifyEstimateForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CostEstimate | Problem]
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
    body: CertifyEstimateRequest | CertifyEstimateForm | Unset = UNSET,
) -> CostEstimate | Problem | None:
    """Estimate Certify

     The worst-case and the expected queries and dollars of a `POST /v1/certify` with the same
    fields, checked as that request would be (invalid fields, unknown models, caps, `budget`,
    `max_cost`; with an image, its format, size and work). Free: it sends no query, books
    nothing on the key's budgets and draws no noise.

    The image is optional: a sequential plan's looks depend on its size only for images too
    large for 1,000 copies per chunk. The expectation is an estimate (`model` says how it was
    computed); the worst case is what budgets and limits are checked against.

    Args:
        body (CertifyEstimateRequest):
        body (CertifyEstimateForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CostEstimate | Problem
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient,
    body: CertifyEstimateRequest | CertifyEstimateForm | Unset = UNSET,
) -> Response[CostEstimate | Problem]:
    """Estimate Certify

     The worst-case and the expected queries and dollars of a `POST /v1/certify` with the same
    fields, checked as that request would be (invalid fields, unknown models, caps, `budget`,
    `max_cost`; with an image, its format, size and work). Free: it sends no query, books
    nothing on the key's budgets and draws no noise.

    The image is optional: a sequential plan's looks depend on its size only for images too
    large for 1,000 copies per chunk. The expectation is an estimate (`model` says how it was
    computed); the worst case is what budgets and limits are checked against.

    Args:
        body (CertifyEstimateRequest):
        body (CertifyEstimateForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CostEstimate | Problem]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient,
    body: CertifyEstimateRequest | CertifyEstimateForm | Unset = UNSET,
) -> CostEstimate | Problem | None:
    """Estimate Certify

     The worst-case and the expected queries and dollars of a `POST /v1/certify` with the same
    fields, checked as that request would be (invalid fields, unknown models, caps, `budget`,
    `max_cost`; with an image, its format, size and work). Free: it sends no query, books
    nothing on the key's budgets and draws no noise.

    The image is optional: a sequential plan's looks depend on its size only for images too
    large for 1,000 copies per chunk. The expectation is an estimate (`model` says how it was
    computed); the worst case is what budgets and limits are checked against.

    Args:
        body (CertifyEstimateRequest):
        body (CertifyEstimateForm):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CostEstimate | Problem
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
