from django.apps import AppConfig


class BomboraConfig(AppConfig):
    name = "bombora"
    label = "bombora"
    verbose_name = "Bombora intent data"
