"""One window state per (user, event type, window, property), shared by the rules that read that window (issue 13,
session 10).

The evaluator kept a state per (user, rule): the bench's 8 segments read 4 windows twice, so every event meant two
state rows to probe and rewrite. A state now holds the window's aggregates for any attribute (count, exact sum, min,
max: `total`, `low`, `high` replace the per-rule `acc` and `value`) and is written once for all its readers.

Forward: each key keeps one of its rows with the earliest `due_at` of the pairs it replaces and no snapshot (its
next evaluation reads the window whole; the timer still fires no later than any pair's would have). States of
inactive or deleted segments go. Backward: one row per (active rule reading the key, user) with the key's
`due_at` and no snapshot. Either way nothing is lost: a state is a cache of the events plus a timer.
"""

import django.db.models.deletion
from django.db import migrations, models

# the key of a rule's window, as segments.evaluator computes it
RULE_KEY = "r.event_type, coalesce(r.window_minutes, 1), coalesce(nullif(r.property, ''), 'value')"

TO_KEYS = f"""
WITH keyed AS (
    SELECT w.id, r.event_type, coalesce(r.window_minutes, 1) AS wm, coalesce(nullif(r.property, ''), 'value') AS prop,
           row_number() OVER (k ORDER BY w.id) AS nth, min(w.due_at) OVER k AS due  -- the whole key's minimum
    FROM segments_windowstate w JOIN segments_segment r ON r.id = w.segment_id AND r.active AND r.kind = 'independent'
    WINDOW k AS (PARTITION BY w.user_id, {RULE_KEY})
), gone AS (
    DELETE FROM segments_windowstate w WHERE NOT EXISTS (SELECT 1 FROM keyed k WHERE k.id = w.id AND k.nth = 1)
)
UPDATE segments_windowstate w SET event_type = k.event_type, window_minutes = k.wm, property = k.prop, due_at = k.due,
    snapshot = '', writer = NULL
FROM keyed k WHERE k.id = w.id AND k.nth = 1
"""

TO_PAIRS = f"""
INSERT INTO segments_windowstate (segment_id, user_id, value, events_in_window, due_at, evaluated_at, snapshot,
                                  event_type, window_minutes, property)
SELECT r.id, w.user_id, 0, w.events_in_window, w.due_at, w.evaluated_at, '', w.event_type, w.window_minutes, w.property
FROM segments_windowstate w JOIN segments_segment r ON r.active AND r.kind = 'independent'
    AND (w.event_type, w.window_minutes, w.property) = ({RULE_KEY})
WHERE w.segment_id IS NULL;
DELETE FROM segments_windowstate WHERE segment_id IS NULL;
"""

AGGREGATES = """
ALTER TABLE segments_windowstate DROP COLUMN acc, ADD COLUMN total numeric, ADD COLUMN low numeric,
    ADD COLUMN high numeric
"""
AGGREGATES_BACK = """
ALTER TABLE segments_windowstate DROP COLUMN total, DROP COLUMN low, DROP COLUMN high, ADD COLUMN acc numeric
"""


class Migration(migrations.Migration):
    dependencies = [("segments", "0008_window_state_fillfactor")]

    operations = [
        migrations.AddField(
            model_name="windowstate",
            name="event_type",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="windowstate",
            name="property",
            field=models.CharField(default="", max_length=100),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="windowstate",
            name="window_minutes",
            field=models.PositiveIntegerField(default=1),
            preserve_default=False,
        ),
        migrations.RunSQL(TO_KEYS, reverse_sql=migrations.RunSQL.noop),
        migrations.RemoveConstraint(model_name="windowstate", name="segments_state_unique"),
        migrations.AlterField(
            model_name="windowstate",
            name="segment",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="window_states",
                to="segments.segment",
            ),
        ),
        migrations.RunSQL(migrations.RunSQL.noop, reverse_sql=TO_PAIRS),
        migrations.RemoveField(model_name="windowstate", name="segment"),
        migrations.RemoveField(model_name="windowstate", name="value"),
        migrations.RunSQL(AGGREGATES, reverse_sql=AGGREGATES_BACK),
        migrations.AddConstraint(
            model_name="windowstate",
            constraint=models.UniqueConstraint(
                fields=("user_id", "event_type", "window_minutes", "property"), name="segments_window_unique"
            ),
        ),
    ]
