"""REDS events keep two indexes: the primary key and (user_id, event_timestamp) for attribution
paths. The file and campaign indexes cost more on a 1M-event COPY than they save: a re-load deletes
one file's events within its days' partitions, and the roll-up scans whole day partitions anyway."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("ingestion_store", "0002_staged_cpm")]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS ingestion_store_redsevent_file; DROP INDEX IF EXISTS ingestion_store_redsevent_campaign;",
            "CREATE INDEX ingestion_store_redsevent_file ON ingestion_store_redsevent (file_id);"
            "CREATE INDEX ingestion_store_redsevent_campaign ON ingestion_store_redsevent (campaign_id, event_date);",
        )
    ]
