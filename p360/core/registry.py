"""What each app contributes to the project layer: admin navigation, dashboard tiles, schedules, demo data,
retention steps; and what a higher app shows on a lower app's page (audience-page panels, audience usages).

The project layer (p360/admin_ui.py, p360/core/jobs/schedules.py, p360/demo.py) iterates these registries
and never imports a domain app. An app registers its entries from its ``AppConfig.ready()``, like the
job kinds (``p360.core.jobs.services.job_handler``)::

    class CampaignsConfig(AppConfig):
        def ready(self) -> None:
            from campaigns import registrations  # noqa: F401  (nav, tiles, demo)

Registration is idempotent by key (re-importing a module replaces its entries instead of doubling them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

Site = Literal["global", "org", "home"]  # the two admin dashboards; "home": an org's marketer home page

# The sidebar groups, in the order they are shown; a group with no visible entry is left out.
NAV_GROUPS: dict[Site, tuple[str, ...]] = {
    "global": ("Organisations and people", "Operations", "Task queue"),
    "org": ("Data", "Operations"),
    "home": (),  # the marketer home has no sidebar
}


@dataclass(frozen=True)
class NavItem:
    """One sidebar entry: shown when the user has `permission`; sorted by `order` inside its group."""

    site: Site
    group: str
    title: str
    icon: str
    url_name: str
    permission: str
    order: int


@dataclass(frozen=True)
class DashboardTile:
    """A contribution to an admin dashboard: `build(request)` returns KPI cards and/or extra context.

    The returned dict may hold ``"kpis"`` (a list of ``{"title", "value", "footer", "href"}`` cards, appended
    in `order`) and any other keys the dashboard template reads (merged into its context)."""

    site: Site
    key: str
    order: int
    build: Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class ScheduleSpec:
    """A recurring django-q2 task, created or updated by name after migrations (`ensure_schedules`).

    Exactly one of `minutes` (every N minutes) or `cron` (a callable, so settings are read late) is set."""

    name: str
    func: str
    minutes: int | None = None
    cron: Callable[[], str] | None = None


@dataclass(frozen=True)
class DemoLoader:
    """Demo data of one app: `load(orgs, created)` gets the demo organisations and a counter dict it may bump
    (`created["campaigns"] += 1`), and returns what it made (or None).

    Loaders run in `order` inside `p360.demo.load_demo`'s transaction, after the orgs and users exist; a non-None
    result is reported under `key`. Loaders must be idempotent: running the demo again changes nothing."""

    key: str
    order: int
    load: Callable[[list[Any], dict[str, int]], Any]


@dataclass(frozen=True)
class RetentionStep:
    """One app's part of a retention kind (issue 16): "metrics" (13 months, archived), "logs" (90 days),
    "audit" (2 years, archived).

    `run(org, *, cutoff, dry_run)` counts (dry run) or archives and deletes the app's rows older than `cutoff`
    for `org` (None: data of no organisation, only for steps with `orgless`) and returns
    ``{"rows": {table: count}, "archived_files": n}`` (``archived_files`` optional). It runs inside the org's
    schema and, unless a dry run, inside the kind's transaction holding the org's retention lock
    (`p360.core.jobs.retention`), which also writes the audit row: a step never commits on its own."""

    kind: str
    key: str
    order: int
    run: Callable[..., dict[str, Any]]
    entity_type: str
    orgless: bool = False


@dataclass(frozen=True)
class AudiencePanel:
    """A section a higher app adds to the audience page (`templates/audiences/detail.html`), so audiences never
    loads that app's template tags: `render(request, audience)` returns safe HTML (e.g. `render_to_string`).

    Panels are shown in `order` below the page's own sections; with none registered the page has none."""

    key: str
    order: int
    render: Callable[[Any, Any], str]


@dataclass(frozen=True)
class BuilderField:
    """A membership field a higher app adds to the audience builder (issue 13: `segment`), so `audiences` never
    imports that app. A tree names it as `{"field": name, "operator": "in" | "not_in", "value": [ids]}`.

    A person of the builder's universe is a member when one of their identity keys is among the keys of the
    current members of any of the ids. Keys are given per universe column (`email_sha256`, `phone_e164`, `maid`),
    normalised as the audience import normalises them (`audiences/normalize.py`). Every callable runs in the
    current org's schema:

    - `ids()`: the ids a tree may name (any other id is refused, naming the node);
    - `choices()`: `[{"id", "name", "count"}]` for the field picker;
    - `keys(ids)`: `{column: set of keys}` of the current members (the polars engine, per membership version);
    - `keys_sql(ids)`: `{column: "SELECT <one text column> ..."}`, the same keys as SQL (materialisation);
    - `version()`: a cheap token that changes whenever a membership or an identity key changes.
    """

    name: str
    label: str
    group: str
    description: str
    ids: Callable[[], Any]
    choices: Callable[[], list[dict[str, Any]]]
    keys: Callable[[tuple[int, ...]], dict[str, Any]]
    keys_sql: Callable[[tuple[int, ...]], dict[str, str]]
    version: Callable[[], str]


@dataclass(frozen=True)
class AudienceUsage:
    """One thing that uses an audience (its lineage, "used by"): a campaign, a delivery, a derived audience..."""

    kind: str  # campaign | delivery | audience | destination | ...
    id: int | str
    name: str
    url: str = ""
    detail: str = ""


@dataclass(frozen=True)
class AudienceUsageProvider:
    """How an app lists where it uses an audience: `provider(audience)` runs inside the audience's org schema and
    returns `AudienceUsage` rows. The audience page and `GET .../audiences/<id>/usage` list every provider's rows
    in `order` (a failing provider is logged and skipped)."""

    key: str
    order: int
    provider: Callable[[Any], list[AudienceUsage]]


_nav: dict[tuple[Site, str], NavItem] = {}
_tiles: dict[tuple[Site, str], DashboardTile] = {}
_schedules: dict[str, ScheduleSpec] = {}
_demo: dict[str, DemoLoader] = {}
_retention: dict[tuple[str, str], RetentionStep] = {}
_audience_panels: dict[str, AudiencePanel] = {}
_builder_fields: dict[str, BuilderField] = {}
_audience_usages: dict[str, AudienceUsageProvider] = {}


def register_nav(*, site: Site, group: str, title: str, icon: str, url_name: str, permission: str, order: int) -> None:
    if group not in NAV_GROUPS[site]:
        raise ValueError(f"unknown {site} navigation group {group!r}; add it to NAV_GROUPS")
    _nav[(site, url_name)] = NavItem(site, group, title, icon, url_name, permission, order)


def register_dashboard_tile(*, site: Site, key: str, order: int, build: Callable[[Any], dict[str, Any]]) -> None:
    _tiles[(site, key)] = DashboardTile(site, key, order, build)


def register_schedule(
    *, name: str, func: str, minutes: int | None = None, cron: Callable[[], str] | None = None
) -> None:
    if (minutes is None) == (cron is None):
        raise ValueError(f"schedule {name!r}: give exactly one of minutes or cron")
    _schedules[name] = ScheduleSpec(name, func, minutes, cron)


def register_demo_loader(*, key: str, order: int, load: Callable[[list[Any], dict[str, int]], Any]) -> None:
    _demo[key] = DemoLoader(key, order, load)


def register_retention_step(
    *,
    kind: str,
    key: str,
    order: int,
    run: Callable[..., dict[str, Any]],
    entity_type: str,
    orgless: bool = False,
) -> None:
    _retention[(kind, key)] = RetentionStep(kind, key, order, run, entity_type, orgless)


def register_audience_panel(*, key: str, order: int, render: Callable[[Any, Any], str]) -> None:
    _audience_panels[key] = AudiencePanel(key, order, render)


def unregister_audience_panel(key: str) -> None:
    _audience_panels.pop(key, None)


def register_builder_field(field: BuilderField) -> None:
    _builder_fields[field.name] = field


def builder_fields() -> list[BuilderField]:
    return sorted(_builder_fields.values(), key=lambda f: f.name)


def builder_field(name: str) -> BuilderField | None:
    return _builder_fields.get(name)


def register_audience_usage(*, key: str, order: int, provider: Callable[[Any], list[AudienceUsage]]) -> None:
    _audience_usages[key] = AudienceUsageProvider(key, order, provider)


def unregister_audience_usage(key: str) -> None:
    _audience_usages.pop(key, None)


def nav_items(site: Site, group: str) -> list[NavItem]:
    return sorted((i for i in _nav.values() if i.site == site and i.group == group), key=lambda i: i.order)


def dashboard_tiles(site: Site) -> list[DashboardTile]:
    return sorted((t for t in _tiles.values() if t.site == site), key=lambda t: t.order)


def schedules() -> list[ScheduleSpec]:
    return list(_schedules.values())


def demo_loaders() -> list[DemoLoader]:
    return sorted(_demo.values(), key=lambda d: d.order)


def retention_steps(kind: str) -> list[RetentionStep]:
    return sorted((r for r in _retention.values() if r.kind == kind), key=lambda r: r.order)


def audience_panels() -> list[AudiencePanel]:
    return sorted(_audience_panels.values(), key=lambda p: p.order)


def audience_usage_providers() -> list[AudienceUsageProvider]:
    return sorted(_audience_usages.values(), key=lambda p: p.order)


# --- Hooks: one app tells others that something happened, without importing them ---------------------------
# Known hooks (name: arguments; who calls it):
#   "metrics_loaded": dates (list of dates); the ingestion ETL, inside its transaction, after it rewrote the daily
#                     metrics of those days in the current org schema (reporting rewrites its rollup).
#   "campaign_deleted": campaign_id=; campaigns.services.campaign_delete, inside its transaction, after the delete
#                     (reporting drops the campaign's rollup rows).
#   "audience_records_changed": audience_id=; audiences (an import's new current version, a version restore, a built
#                     audience's new members), inside its transaction (activation queues the count of the audience's
#                     UID2 match figures).
_hooks: dict[str, dict[str, Callable[..., None]]] = {}


def register_hook(name: str, *, key: str, fn: Callable[..., None]) -> None:
    _hooks.setdefault(name, {})[key] = fn


def call_hooks(name: str, *args: Any, **kwargs: Any) -> None:
    """Call every listener of `name` in registration order (synchronously: same transaction)."""
    for fn in list(_hooks.get(name, {}).values()):
        fn(*args, **kwargs)
