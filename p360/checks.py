"""System checks specific to P360."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from p360.core.jobs.config import validate_q_cluster


@register()
def check_task_cluster(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    return [Error(problem, id="p360.E001") for problem in validate_q_cluster(settings.Q_CLUSTER)]
