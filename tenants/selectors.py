"""Reads about organisations."""

from __future__ import annotations

from p360.core.tenancy import current_org

__all__ = ["current_org"]
