from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Organisations and users"

    def ready(self) -> None:
        from p360.core.admin_sites import set_org_admin_rule
        from tenants import mfa, receivers, registrations  # noqa: F401  (MFA and audit receivers; admin nav, tiles)
        from tenants.access import can_use_org_admin

        set_org_admin_rule(can_use_org_admin)  # the org admin site (core) asks the tenants access rule
