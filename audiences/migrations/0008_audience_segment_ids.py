"""Issue 13 (saved audiences follow event segments): `Audience.segment_ids`, the event segments a built audience's
tree names, GIN-indexed so "which built audiences follow segment S" is one indexed query; filled here for built
audiences that exist already. `SegmentChange`: the segments whose membership changed since those audiences were
last refreshed (the debounced refresh's queue, segments/audience_refresh.py)."""

import django.contrib.postgres.indexes
from django.db import migrations, models


def backfill(apps, schema_editor):  # type: ignore[no-untyped-def]
    from audiences.lineage import segment_ids

    Audience = apps.get_model("audiences", "Audience")
    for audience in Audience.objects.filter(kind="built", tree__isnull=False).only("pk", "tree").iterator():
        ids = segment_ids(audience.tree)
        if ids:
            Audience.objects.filter(pk=audience.pk).update(segment_ids=ids)


class Migration(migrations.Migration):
    dependencies = [("audiences", "0007_audience_parent_ids_lineage")]

    operations = [
        migrations.AddField(
            model_name="audience",
            name="segment_ids",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddIndex(
            model_name="audience",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["segment_ids"], name="audience_segment_ids_gin", opclasses=["jsonb_path_ops"]
            ),
        ),
        migrations.CreateModel(
            name="SegmentChange",
            fields=[
                ("segment_id", models.BigIntegerField(primary_key=True, serialize=False)),
                ("due_at", models.DateTimeField()),
                ("marked_at", models.DateTimeField(auto_now_add=True)),
            ],
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
