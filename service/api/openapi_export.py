"""Write the app's OpenAPI document deterministically (sorted keys): ``make openapi``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from service.api.app import create_app
from service.config import Settings

__all__ = ["openapi_document"]


def openapi_document() -> str:
    # Development settings: the document does not depend on secrets or keys.
    app = create_app(Settings(environment="development", redis_url=None, execution="in-process"))
    return json.dumps(app.openapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "clients/openapi.json")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(openapi_document())
    print(f"wrote {target}")
