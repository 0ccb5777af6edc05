"""Incremental window state (segments.evaluator): the columns the evaluator alone reads and writes, in plain SQL.

- segments_windowstate.acc: the rule's exact running aggregate (sum, min or max of the property; unrounded);
- segments_windowstate.snapshot: the pg_snapshot (as text) of the statement that last read the pair's whole window
  ('' = unknown: the next evaluation reads the window again); writer: that statement's transaction id;
- segments_pendingbatch.xact: the transaction that stored the batch (NULL: its events may be counted already, as
  for a redelivered JetStream message); attributes: the events' attributes, so that adding them to a
  state never reads the events table.

An event is added to a state without re-reading the window exactly when its batch's transaction is not visible in
the state's snapshot. Django's models do not list these columns (nothing else reads them; the defaults fill them).
"""

from django.db import migrations

FORWARD = """
ALTER TABLE segments_windowstate ADD COLUMN acc numeric, ADD COLUMN snapshot text NOT NULL DEFAULT '',
    ADD COLUMN writer bigint;
-- room on each page, so that rewriting a state whose due_at did not move is a HOT update (no index entries)
ALTER TABLE segments_windowstate SET (fillfactor = 70);
-- likewise a profile's last_active_at, moved by every batch its user is in
ALTER TABLE segments_userprofile SET (fillfactor = 80);
ALTER TABLE segments_pendingbatch ADD COLUMN xact xid8 DEFAULT pg_current_xact_id(), ADD COLUMN attributes jsonb[];
"""
BACKWARD = """
ALTER TABLE segments_windowstate DROP COLUMN acc, DROP COLUMN snapshot, DROP COLUMN writer;
ALTER TABLE segments_windowstate RESET (fillfactor);
ALTER TABLE segments_userprofile RESET (fillfactor);
ALTER TABLE segments_pendingbatch DROP COLUMN xact, DROP COLUMN attributes;
"""


class Migration(migrations.Migration):
    dependencies = [("segments", "0004_pending_batch")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
