from django.apps import AppConfig


class IngestionStoreConfig(AppConfig):
    name = "ingestion.ingestion_store"
    label = "ingestion_store"
    verbose_name = "Ingestion data (per organisation)"
