from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "p360.core.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from p360.core.audit import receivers  # noqa: F401  (login / logout / failed login)
