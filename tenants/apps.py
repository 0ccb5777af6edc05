from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Organisations and users"

    def ready(self) -> None:
        from tenants import mfa  # noqa: F401  (connects the MFA audit receivers)
