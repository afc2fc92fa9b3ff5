from enum import StrEnum


class BoundKind(StrEnum):
    BETTING = "betting"
    CLOPPER_PEARSON = "clopper-pearson"

    def __str__(self) -> str:
        return str(self.value)
