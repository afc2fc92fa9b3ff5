from enum import StrEnum


class JobFormOperation(StrEnum):
    CERTIFY = "certify"
    PREDICT = "predict"

    def __str__(self) -> str:
        return str(self.value)
