"""Cheaper writes on the ingestion path (issue 13, 100K events/s): per event, two B-tree insertions fewer.

- segments_event_id.event_time and segments_event.(event_type, event_time) were B-trees: both are read only by
  bulk operations (retention deletes a day's ids; re-evaluation and the backtest scan a type over a time range),
  and events arrive roughly in time order, so a BRIN index on event_time (one summary per 128 pages, maintained
  for almost nothing) finds the same block ranges. Every ingested event paid for the B-trees; the bulk readers
  now filter the type from the blocks of the time range.
- segments_pendingbatch's arrays (one row per queued batch, read once and deleted) are stored out of line
  uncompressed: pglz compressed ~1 MB per 10,000 events in the request's transaction, CPU spent to save WAL
  bytes of a row that lives for a second.
"""

from django.db import migrations

FORWARD = """
DROP INDEX segments_event_id_time_idx;
CREATE INDEX segments_event_id_time_brin ON segments_event_id USING brin (event_time);
DROP INDEX segments_event_type_time_idx;
CREATE INDEX segments_event_time_brin ON segments_event USING brin (event_time);
ALTER TABLE segments_pendingbatch ALTER COLUMN user_ids SET STORAGE EXTERNAL,
    ALTER COLUMN event_types SET STORAGE EXTERNAL, ALTER COLUMN event_ids SET STORAGE EXTERNAL,
    ALTER COLUMN event_times SET STORAGE EXTERNAL, ALTER COLUMN attributes SET STORAGE EXTERNAL;
"""
BACKWARD = """
DROP INDEX segments_event_id_time_brin;
CREATE INDEX segments_event_id_time_idx ON segments_event_id (event_time);
DROP INDEX segments_event_time_brin;
CREATE INDEX segments_event_type_time_idx ON segments_event (event_type, event_time);
ALTER TABLE segments_pendingbatch ALTER COLUMN user_ids SET STORAGE EXTENDED,
    ALTER COLUMN event_types SET STORAGE EXTENDED, ALTER COLUMN event_ids SET STORAGE EXTENDED,
    ALTER COLUMN event_times SET STORAGE EXTENDED, ALTER COLUMN attributes SET STORAGE EXTENDED;
"""


class Migration(migrations.Migration):
    dependencies = [("segments", "0006_drop_redundant_segment_indexes")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
