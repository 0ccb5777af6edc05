"""Validation of the task-cluster settings, run when the settings load (start-up refuses bad ones)."""

from __future__ import annotations

from typing import Any


def validate_q_cluster(conf: dict[str, Any]) -> list[str]:
    """Return the problems with a Q_CLUSTER dict; empty when it is safe.

    django-q2 delivers at least once: a task still running after `retry` seconds is handed out
    again, so `retry` must exceed `timeout`; no timeout or unlimited attempts let a task that
    kills its worker run forever (django-q2 #327).
    """
    problems = []
    timeout, retry, attempts = conf.get("timeout"), conf.get("retry"), conf.get("max_attempts")
    if not isinstance(timeout, int) or timeout <= 0:
        problems.append("Q_CLUSTER timeout must be a positive number of seconds (None means never time out)")
    if not isinstance(retry, int) or retry <= 0:
        problems.append("Q_CLUSTER retry must be a positive number of seconds")
    elif isinstance(timeout, int) and retry <= timeout:
        problems.append(f"Q_CLUSTER retry ({retry}) must be greater than timeout ({timeout})")
    if not isinstance(attempts, int) or attempts <= 0:
        problems.append("Q_CLUSTER max_attempts must be at least 1 (0 means retry forever)")
    return problems
