"""Shared ModelAdmin building blocks."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import QuerySet
from django.http import HttpRequest
from unfold.admin import ModelAdmin
from unfold.views import ChangeList  # unfold's own (its ModelAdmin returns it)

from p360.core import formatting


class BoundedDateChangeList(ChangeList):
    """A date-hierarchy value no date can hold is an incorrect lookup (the list with its notice), not a 500.

    Django (6.1) turns `?<field>__year=` into a datetime catching only ValueError from the constructor:
    `__year=99999999999999999999` raised OverflowError, and `__year=9999` (the next year's bound, 10000) or
    `__year=9999&__month=12&__day=31` raised outside its try. Found by session 11's junk sweep."""

    def get_filters(self, request: HttpRequest) -> Any:
        try:
            return super().get_filters(request)
        except (OverflowError, ValueError) as exc:
            raise IncorrectLookupParameters(exc) from exc


class BoundedDateHierarchyMixin:
    """For every ModelAdmin with a `date_hierarchy` (tests/p360/test_hostile_requests.py checks each has it)."""

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return BoundedDateChangeList


class ReadOnlyAdmin(BoundedDateHierarchyMixin, ModelAdmin):
    """For records written only by services (audit events, jobs): browse and filter, never edit."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class OrgIdListFilter(admin.SimpleListFilter):
    """Filter a public-schema list by organisation id (`?org=<pk>`). A value that is not one of the
    offered ids (`?org=abc`, `?org='`) is an incorrect lookup: the admin shows the list with its
    "incorrect filter" notice instead of a 500 (issue 15). `extra_values` maps other accepted values to
    their own filter (e.g. "none")."""

    title = "organisation"
    parameter_name = "org"
    field = "org_id"
    extra_values: dict[str, dict[str, Any]] = {}

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if value in self.extra_values:
            return queryset.filter(**self.extra_values[value])
        if not (value.isascii() and value.isdigit()) or int(value) > 2**63 - 1:
            raise IncorrectLookupParameters(f"organisation {value!r} is not an id")
        return queryset.filter(**{self.field: int(value)})


# Changelist columns for figures: the admins show counts and amounts as the portal's pages do ("1,234,567",
# "$50,000.00"; a list showed 2414 and 50000.00), through the one formatting layer, still sorted by the field.
# The change form keeps the exact stored value.


def count_column(field: str, description: str) -> Callable[[Any], str]:
    """A list_display column: the integer `field` with thousands separators, sortable by `field`."""

    @admin.display(description=description, ordering=field)
    def column(obj: Any) -> str:
        return formatting.count(getattr(obj, field))

    column.__name__ = f"{field}_shown"
    return column


def money_column(field: str, description: str, currency_field: str = "currency") -> Callable[[Any], str]:
    """A list_display column: the amount `field` in the row's currency, sortable by `field`. Two places, more
    only when the value has them (a 4-place bid or CPM of 1.2345 is not rounded to 1.23 in the list)."""

    @admin.display(description=description, ordering=field)
    def column(obj: Any) -> str:
        value = getattr(obj, field)
        places = 2
        if isinstance(value, Decimal) and value.is_finite():
            places = min(4, max(2, -int(value.normalize().as_tuple().exponent)))
        return formatting.money(value, getattr(obj, currency_field, None), places=places)

    column.__name__ = f"{field}_shown"
    return column
