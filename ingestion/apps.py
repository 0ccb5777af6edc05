from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from ingestion import jobs, registrations  # noqa: F401  (job kinds; navigation, tiles, schedules, demo)
