# Issue 18 (story 6.1): research volume and Bombora's surge indicator beside the composite score, when a file
# carries them (NULL otherwise). Nullable columns without a default: adding them to the partitioned table (and
# every week partition) is a catalogue change, no rewrite.

from django.db import migrations

SCORE = "public.ingestion_bombora_score"


class Migration(migrations.Migration):
    dependencies = [
        ("bombora", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"ALTER TABLE {SCORE} ADD COLUMN IF NOT EXISTS volume integer, ADD COLUMN IF NOT EXISTS surging boolean",
            reverse_sql=f"ALTER TABLE {SCORE} DROP COLUMN IF EXISTS volume, DROP COLUMN IF EXISTS surging",
        ),
    ]
