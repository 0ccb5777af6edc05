# Issue 5 (Bombora loader): the per-week domain summary table, partitioned by week like the scores.

from django.db import migrations

from ingestion.bombora.store import CREATE_DOMAIN_TABLE_SQL, DOMAIN_QUALIFIED


class Migration(migrations.Migration):

    dependencies = [
        ("ingestion", "0002_bombora"),
    ]

    operations = [
        migrations.RunSQL(
            sql=[
                CREATE_DOMAIN_TABLE_SQL,
                f"CREATE INDEX ingestion_bombora_domain_domain ON {DOMAIN_QUALIFIED} (domain)",
            ],
            reverse_sql=[f"DROP TABLE {DOMAIN_QUALIFIED}"],
        ),
    ]
