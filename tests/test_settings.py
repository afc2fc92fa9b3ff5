import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.adapters.azure import AzureSettings
from service.api.services import signer_for
from service.config import PLACEHOLDER_SECRET, Settings
from service.core.signing import new_private_key_pem


def test_development_runs_with_the_placeholder_secret(monkeypatch) -> None:
    monkeypatch.delenv("DSMOOTH_SECRET", raising=False)
    settings = Settings(environment="development")
    assert settings.secret_bytes == PLACEHOLDER_SECRET.encode()


@pytest.mark.parametrize("secret", [PLACEHOLDER_SECRET, "short"])
def test_production_refuses_a_placeholder_or_short_secret(monkeypatch, secret: str) -> None:
    monkeypatch.setenv("DSMOOTH_ENVIRONMENT", "production")
    monkeypatch.setenv("DSMOOTH_SECRET", secret)
    with pytest.raises(ValidationError, match="DSMOOTH_SECRET must be set"):
        Settings()


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("DSMOOTH_ENVIRONMENT", "production")
    monkeypatch.setenv("DSMOOTH_SECRET", "a" * 32)
    monkeypatch.setenv("DSMOOTH_BATCH_SIZE", "64")
    monkeypatch.setenv("DSMOOTH_API_KEYS", '[{"name": "ci", "sha256": "' + "0" * 64 + '"}]')
    monkeypatch.setenv("DSMOOTH_SIGNING_KEY", new_private_key_pem().decode())
    settings = Settings()
    assert settings.batch_size == 64 and settings.secret_bytes == b"a" * 32
    assert "a" * 32 not in repr(settings)


def test_production_refuses_to_start_without_a_signing_key(monkeypatch) -> None:
    monkeypatch.setenv("DSMOOTH_ENVIRONMENT", "production")
    monkeypatch.setenv("DSMOOTH_SECRET", "c" * 32)
    monkeypatch.setenv("DSMOOTH_API_KEYS", '[{"name": "ci", "sha256": "' + "0" * 64 + '"}]')
    settings = Settings()  # workers start without it: only the gateway signs
    with pytest.raises(ValueError, match="DSMOOTH_SIGNING_KEY must hold"):
        signer_for(settings)
    monkeypatch.setenv("DSMOOTH_SIGNING_KEY", new_private_key_pem().decode())
    assert signer_for(Settings()).kid


def test_production_refuses_open_access(monkeypatch) -> None:
    monkeypatch.setenv("DSMOOTH_ENVIRONMENT", "production")
    monkeypatch.setenv("DSMOOTH_SECRET", "b" * 32)
    monkeypatch.delenv("DSMOOTH_API_KEYS", raising=False)
    with pytest.raises(ValidationError, match="DSMOOTH_API_KEYS must list"):
        Settings()


def test_api_keys_refuse_the_placeholder_secret_in_any_environment(monkeypatch) -> None:
    monkeypatch.setenv("DSMOOTH_ENVIRONMENT", "development")
    monkeypatch.setenv("DSMOOTH_API_KEYS", '[{"name": "ci", "sha256": "' + "0" * 64 + '"}]')
    with pytest.raises(ValidationError, match="DSMOOTH_SECRET is the public placeholder"):
        Settings()
    monkeypatch.setenv("DSMOOTH_SECRET", "d" * 32)  # control: a real secret starts
    assert Settings().api_keys[0].name == "ci"


def test_a_dotenv_file_in_the_working_directory_is_ignored() -> None:
    dotenv = Path(".env")
    if dotenv.exists():
        pytest.skip("a .env exists in the working directory: it is not ours to overwrite")
    dotenv.write_text("DSMOOTH_ENVIRONMENT=production\nDSMOOTH_AZURE_KEY=from-dotenv\n")
    try:
        assert Settings().environment == "development"
        assert AzureSettings().key.get_secret_value() == ""
    finally:
        dotenv.unlink()


def test_dsmooth_variables_of_the_developer_are_removed() -> None:
    kept = ("DSMOOTH_SHARED_DIR", "DSMOOTH_CACHE_DIR")
    assert not any(k.startswith("DSMOOTH_") and k not in kept for k in os.environ)
