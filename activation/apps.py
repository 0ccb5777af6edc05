from django.apps import AppConfig


class ActivationConfig(AppConfig):
    name = "activation"
    verbose_name = "Activation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from activation import registrations  # noqa: F401  (navigation, dashboard tile, schedules)
