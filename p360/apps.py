from django.apps import AppConfig


class P360Config(AppConfig):
    name = "p360"
    verbose_name = "P360 portal"

    def ready(self) -> None:
        from p360 import checks  # noqa: F401  (registers system checks)
        from p360.admin_ui import register_core_navigation
        from p360.api import schema  # noqa: F401  (OpenAPI extensions)
        from p360.core.jobs import signals  # noqa: F401  (schema reset around every task)

        register_core_navigation()  # the apps register theirs from their own ready()
