"""Room on every window-state page for HOT updates (issue 13, session 9).

The evaluator rewrites the window state of every (user, rule) pair a batch touches (about 2 per event), and at the
default fillfactor of 100 a page has no room for the new version: most updates went to another page, inserting into
both indexes (the (segment, user) key and the due_at timer). With a page kept 40 % free the new version usually
stays on its page (a heap-only tuple: no index insertion; the old one is pruned on a later visit) whenever due_at is
unchanged, which is the common case for a state brought forward. Reversible: RESET restores the default; pages
written until then keep their layout until rewritten.
"""

from django.db import migrations

FORWARD = "ALTER TABLE segments_windowstate SET (fillfactor = 60)"
BACKWARD = "ALTER TABLE segments_windowstate RESET (fillfactor)"


class Migration(migrations.Migration):
    dependencies = [("segments", "0007_cheaper_ingest_writes")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=BACKWARD)]
