from django.db import migrations

CREATE = """
CREATE TABLE segments_event (
    event_id text NOT NULL,
    user_id text NOT NULL,
    event_type text NOT NULL,
    event_time timestamptz NOT NULL,
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    session_id text,
    device_id text,
    received_at timestamptz NOT NULL DEFAULT now()
) PARTITION BY RANGE (event_time);
CREATE INDEX segments_event_user_idx ON segments_event (user_id, event_type, event_time);
CREATE INDEX segments_event_type_time_idx ON segments_event (event_type, event_time);
CREATE TABLE segments_event_id (
    event_id text PRIMARY KEY,
    event_time timestamptz NOT NULL
);
CREATE INDEX segments_event_id_time_idx ON segments_event_id (event_time);
"""


class Migration(migrations.Migration):
    dependencies = [("segments", "0001_initial")]

    # Day partitions (created on demand by segments.events.ensure_partitions), which Django's schema
    # editor cannot express: plain SQL, reversible.
    operations = [
        migrations.RunSQL(CREATE, reverse_sql="DROP TABLE segments_event; DROP TABLE segments_event_id"),
    ]
