"""The event id table's key compared byte by byte (issue 13, ingestion CPU).

The database's collation (C.UTF-8 under libc) is not PostgreSQL's "C": every comparison of two ids in the id
table's unique index went through strcoll, after copying both into NUL-terminated buffers. Each ingested event
descends that index once (~14 comparisons at a few million ids); with COLLATE "C" they are memcmp. Only
equality is asked of these ids (is this id new?), and for valid UTF-8 byte order is code point order, the order
C.UTF-8 sorts in, so nothing that reads the table sees a difference. The index is rebuilt (not the table).
"""

from django.db import migrations

FORWARD = 'ALTER TABLE segments_event_id ALTER COLUMN event_id TYPE text COLLATE "C"'
BACKWARD = 'ALTER TABLE segments_event_id ALTER COLUMN event_id TYPE text COLLATE "default"'


class Migration(migrations.Migration):
    dependencies = [("segments", "0010_pending_batch_progress")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
