from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "audiences"
    verbose_name = "Audiences"

    def ready(self) -> None:
        from audiences import registrations  # noqa: F401  (admin navigation, dashboard tile, demo data)
