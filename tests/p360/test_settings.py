"""Production settings refuse unsafe configuration and pass `check --deploy` (trust 23, 27)."""

from __future__ import annotations

import subprocess

from tests.cli import run_manage

PROD_ENV = {
    "P360_ENV": "prod",
    "SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-for-tests-0123456789",
    "P360_ALLOWED_HOSTS": "p360.example.com",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_manage(*args, env=env, clean=True)


def test_prod_passes_check_deploy_with_no_warnings():
    completed = manage("check", "--deploy", "--fail-level", "WARNING", **PROD_ENV)
    assert completed.returncode == 0, completed.stderr + completed.stdout
    assert "System check identified no issues" in completed.stdout


def test_prod_refuses_default_or_missing_secret_key():
    for secret in ("", "p360-dev-only-insecure-secret-key-change-me-in-production-0123456789", "short"):
        completed = manage("check", **{**PROD_ENV, "SECRET_KEY": secret})
        assert completed.returncode != 0
        assert "SECRET_KEY" in completed.stderr


def test_start_up_refuses_unsafe_task_settings():
    completed = manage("check", P360_Q_TIMEOUT="600", P360_Q_RETRY="300")
    assert completed.returncode != 0
    assert "retry (300) must be greater than timeout (600)" in completed.stderr
