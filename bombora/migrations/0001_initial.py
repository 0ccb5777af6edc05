# Bombora moved out of the ingestion app: the models join this app's state; the tables (created by
# ingestion 0002/0003, kept by db_table) do not move, so the database is left untouched.

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('ingestion', '0003_bombora_domains_topic_weeks'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='BomboraTopic',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=300)),
                        ('category', models.CharField(blank=True, max_length=300)),
                        ('first_seen_week', models.DateField(blank=True, null=True)),
                        ('last_seen_week', models.DateField(blank=True, null=True)),
                    ],
                    options={
                        'db_table': 'ingestion_bomboratopic',
                        'ordering': ['name'],
                        'constraints': [models.UniqueConstraint(django.db.models.functions.text.Lower('name'), name='bombora_topic_name_ci_unique')],
                    },
                ),
                migrations.CreateModel(
                    name='BomboraWeek',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('week', models.DateField(unique=True)),
                        ('status', models.CharField(choices=[('loading', 'Loading'), ('ready', 'Ready'), ('pruned', 'Pruned (history limit)')], default='loading', max_length=16)),
                        ('rows', models.BigIntegerField(default=0)),
                        ('domains', models.BigIntegerField(default=0)),
                        ('topics', models.IntegerField(default=0)),
                        ('surging_rows', models.BigIntegerField(default=0, help_text='Rows with composite score >= 60.')),
                        ('file_name', models.CharField(blank=True, max_length=500)),
                        ('loaded_at', models.DateTimeField(blank=True, null=True)),
                        ('run', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='ingestion.ingestionrun')),
                    ],
                    options={
                        'db_table': 'ingestion_bomboraweek',
                        'ordering': ['-week'],
                    },
                ),
                migrations.CreateModel(
                    name='BomboraTopicWeek',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('week', models.DateField()),
                        ('domains', models.BigIntegerField(default=0)),
                        ('surging', models.BigIntegerField(default=0)),
                        ('topic', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='weeks', to='bombora.bomboratopic')),
                    ],
                    options={
                        'db_table': 'ingestion_bomboratopicweek',
                        'ordering': ['-week', 'topic'],
                        'constraints': [models.UniqueConstraint(fields=('week', 'topic'), name='bombora_topic_week_unique')],
                    },
                ),
            ],
        ),
    ]
