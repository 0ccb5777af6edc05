from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "p360.core.jobs"
    label = "jobs"
    verbose_name = "Jobs"
