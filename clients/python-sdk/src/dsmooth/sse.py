"""A Server-Sent Events parser (the WHATWG algorithm) over lines as they arrive."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "SseParser", "aparse", "parse"]


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None = None


class SseParser:
    """Feed it lines (without their line ends); it answers an event at each blank line."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        if not line:
            if not self._data:
                self._event = ""
                return None
            event = ServerSentEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):  # a comment: sse-starlette's pings
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


def parse(lines: Iterable[str]) -> Iterator[ServerSentEvent]:
    parser = SseParser()
    for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event


async def aparse(lines: AsyncIterable[str]) -> AsyncIterator[ServerSentEvent]:
    parser = SseParser()
    async for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event
