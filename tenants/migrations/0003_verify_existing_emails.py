"""Email verification became mandatory: addresses of users who already sign in with a password were
vouched for by the staff who created them, so record them as verified (nothing else changes)."""

from django.db import migrations


def forwards(apps, schema_editor):
    User = apps.get_model("tenants", "User")
    EmailAddress = apps.get_model("account", "EmailAddress")
    known = set(EmailAddress.objects.values_list("user_id", flat=True))
    EmailAddress.objects.bulk_create(
        [
            EmailAddress(user_id=user.pk, email=user.email, verified=True, primary=True)
            for user in User.objects.exclude(password__startswith="!").only("pk", "email")
            if user.pk not in known
        ]
    )


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0002_external_identities_and_invitations"),
        ("account", "0009_emailaddress_unique_primary_email"),
    ]

    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
