"""Issue 18 (lineage index): `Audience.parent_ids`, the audiences a built audience's tree references, GIN-indexed so
"derived audiences of X" is one indexed query; filled here for built audiences that exist already."""

import django.contrib.postgres.indexes
from django.conf import settings
from django.db import migrations, models


def backfill(apps, schema_editor):  # type: ignore[no-untyped-def]
    from audiences.lineage import parent_ids

    Audience = apps.get_model("audiences", "Audience")
    for audience in Audience.objects.filter(kind="built", tree__isnull=False).only("pk", "tree").iterator():
        ids = parent_ids(audience.tree)
        if ids:
            Audience.objects.filter(pk=audience.pk).update(parent_ids=ids)


class Migration(migrations.Migration):
    dependencies = [
        ("audiences", "0006_built_audience_proxy"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="audience",
            name="parent_ids",
            field=models.JSONField(blank=True, default=list, editable=False),
        ),
        migrations.AddIndex(
            model_name="audience",
            index=django.contrib.postgres.indexes.GinIndex(
                fields=["parent_ids"], name="audience_parent_ids_gin", opclasses=["jsonb_path_ops"]
            ),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
