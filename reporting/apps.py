from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        from reporting import registrations  # noqa: F401  (navigation, tiles, schedule, demo, hooks)
