from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting"

    def ready(self) -> None:
        from django.db.models.signals import post_delete

        from campaigns.models import Campaign, Strategy
        from reporting import registrations  # noqa: F401  (navigation, tiles, schedule, demo, metrics hook)

        # The daily metrics of a deleted campaign/strategy go with it (ORM cascade); so must its rollup
        # rows, or the dashboard's totals would keep counting them.
        post_delete.connect(_drop_campaign_rollup, sender=Campaign, dispatch_uid="reporting-rollup-campaign")
        post_delete.connect(_drop_strategy_rollup, sender=Strategy, dispatch_uid="reporting-rollup-strategy")


def _drop_campaign_rollup(sender: object, instance: object, **kwargs: object) -> None:
    from reporting.models import DailyRollup

    DailyRollup.objects.filter(campaign_id=instance.pk).delete()  # type: ignore[attr-defined]


def _drop_strategy_rollup(sender: object, instance: object, **kwargs: object) -> None:
    from reporting.models import DailyRollup

    DailyRollup.objects.filter(strategy_id=instance.pk).delete()  # type: ignore[attr-defined]
