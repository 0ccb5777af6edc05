"""A queued batch's progress (issue 13, session 10): the evaluator commits a claim chunk by chunk of user buckets,
and `done_buckets` (the last bucket evaluated, -1 for none) moves in each chunk's transaction. A crash resumes
after the last committed chunk: buckets up to the mark are never evaluated again with this batch (a window state
brought forward would add its events twice). Rows queued by code without the column read -1: evaluated whole."""

from django.db import migrations

FORWARD = "ALTER TABLE segments_pendingbatch ADD COLUMN done_buckets integer NOT NULL DEFAULT -1"
BACKWARD = "ALTER TABLE segments_pendingbatch DROP COLUMN done_buckets"


class Migration(migrations.Migration):
    dependencies = [("segments", "0009_window_state_per_window")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
