from enum import StrEnum


class JobRequestOperation(StrEnum):
    CERTIFY = "certify"
    PREDICT = "predict"

    def __str__(self) -> str:
        return str(self.value)
