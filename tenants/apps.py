from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Organisations and users"

    def ready(self) -> None:
        from tenants import mfa, receivers  # noqa: F401  (connect the MFA and account audit receivers)
