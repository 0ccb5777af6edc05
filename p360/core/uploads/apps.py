from django.apps import AppConfig


class UploadsConfig(AppConfig):
    name = "p360.core.uploads"
    label = "uploads"
    verbose_name = "Uploads"

    def ready(self) -> None:
        from p360.core.uploads import jobs  # noqa: F401  (registers the "uploads.expire" job kind)
