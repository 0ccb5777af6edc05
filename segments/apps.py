from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "segments"
    verbose_name = "Event segments"

    def ready(self) -> None:
        from segments import registrations  # noqa: F401  (admin navigation, schedules)
