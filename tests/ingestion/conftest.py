from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _stored_files_in_tmp(settings: Any, tmp_path_factory: Any) -> None:
    """Stored copies of ingested files go to a temporary folder, never var/media."""
    location = tmp_path_factory.mktemp("media")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(location)}},
    }
    settings.P360_INGEST_ALERT_EMAILS = ["ops@p360.test"]
