"""GET /problems and GET /problems/{slug}: a page per problem type, where problem documents'
``type`` URIs resolve (RFC 9457 3.1.1). Out of the OpenAPI document: pages for people, not SDKs."""

from __future__ import annotations

import re
from html import escape

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from service.api.problems import PROBLEM_TYPES, ProblemError, ProblemType

router = APIRouter(prefix="/problems", include_in_schema=False)

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem}}
code{{background:#f2f2f2;padding:0 .2em}}td,th{{text-align:left;padding:.2em .8em .2em 0}}</style>
</head><body>
{body}
</body></html>
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(title), body=body))


@router.get("")
async def list_problem_types() -> HTMLResponse:
    rows = "\n".join(
        f'<tr><td>{p.status}</td><td><a href="{p.uri}"><code>{p.slug}</code></a></td>'
        f"<td>{escape(p.title)}</td></tr>"
        for p in sorted(PROBLEM_TYPES.values(), key=lambda p: (p.status, p.slug))
    )
    body = (
        "<h1>Problem types</h1>\n<p>Every error of this API is an RFC 9457 "
        "<code>application/problem+json</code> document; its <code>type</code> is one of these "
        "pages (<code>about:blank</code> for plain HTTP errors: 404, 405).</p>\n"
        f"<table><tr><th>status</th><th>type</th><th>title</th></tr>\n{rows}\n</table>"
    )
    return _page("Problem types", body)


@router.get("/{slug}")
async def show_problem_type(slug: str) -> HTMLResponse:
    problem = PROBLEM_TYPES.get(slug)
    if problem is None:
        raise ProblemError(
            status=404,
            slug="",
            title="Not found",
            detail="no such problem type; GET /problems lists them",
        )
    return _page(problem.title, _describe(problem))


def _text(markdown: str) -> str:
    """Escaped, its `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(markdown))


def _describe(problem: ProblemType) -> str:
    return (
        f"<h1>{escape(problem.title)}</h1>\n"
        f"<p><code>type</code>: <code>{problem.uri}</code> &middot; HTTP {problem.status}</p>\n"
        f"<h2>What happened</h2>\n<p>{_text(problem.description)}</p>\n"
        f"<h2>What to do</h2>\n<p>{_text(problem.remedy)}</p>\n"
        "<p>The document's <code>detail</code> says what went wrong in your request; quote its "
        "<code>request_id</code> when you report a problem. "
        '<a href="/problems">All problem types</a>.</p>'
    )
