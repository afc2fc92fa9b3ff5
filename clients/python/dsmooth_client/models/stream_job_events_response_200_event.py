from enum import StrEnum


class StreamJobEventsResponse200Event(StrEnum):
    END = "end"
    PROGRESS = "progress"

    def __str__(self) -> str:
        return str(self.value)
