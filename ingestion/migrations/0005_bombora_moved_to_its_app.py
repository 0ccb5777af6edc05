# Bombora moved to its own app (bombora 0001 takes the models into its state). The tables stay where they are.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0004_run_org_slices'),
        ('bombora', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.DeleteModel(name='BomboraTopicWeek'),
                migrations.DeleteModel(name='BomboraWeek'),
                migrations.DeleteModel(name='BomboraTopic'),
            ],
        ),
    ]
