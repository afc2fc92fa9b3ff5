"""Stamp the service's version (pyproject.toml's [project] version) on both SDKs: `make clients`.

The generated Python client takes it from the OpenAPI document (info.version); this writes it
into the hand-written packages: clients/python-sdk (its version, and its pin of the generated
client) and clients/typescript (package.json, package-lock.json, src/version.ts).
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from pathlib import Path

CLIENTS = Path(__file__).resolve().parent


def service_version(root: Path = CLIENTS.parent) -> str:
    with (root / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def _replace(path: Path, pattern: str, replacement: str, count: int = 1) -> None:
    text = path.read_text()
    new, made = re.subn(pattern, replacement, text, count=count, flags=re.MULTILINE)
    if made != count:
        sys.exit(f"{path}: expected {count} match(es) of {pattern!r}, found {made}")
    path.write_text(new)


def stamp(version: str, clients: Path = CLIENTS) -> None:
    sdk = clients / "python-sdk"
    _replace(sdk / "pyproject.toml", r'^version = ".*"$', f'version = "{version}"')
    _replace(
        sdk / "pyproject.toml",
        r'"denoised-smoothing-client==[^"]*"',
        f'"denoised-smoothing-client=={version}"',
    )
    _replace(sdk / "src/dsmooth/_version.py", r'^__version__ = ".*"$', f'__version__ = "{version}"')
    typescript = clients / "typescript"
    _replace(typescript / "package.json", r'^  "version": ".*",$', f'  "version": "{version}",')
    _replace(
        typescript / "src/version.ts",
        r'^export const VERSION = ".*";$',
        f'export const VERSION = "{version}";',
    )
    lock_path = typescript / "package-lock.json"
    lock = json.loads(lock_path.read_text())
    lock["version"] = lock["packages"][""]["version"] = version
    lock_path.write_text(json.dumps(lock, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    version = service_version()
    stamp(version)
    print(f"stamped version {version} on clients/python-sdk and clients/typescript")
