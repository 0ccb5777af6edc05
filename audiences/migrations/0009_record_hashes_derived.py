"""Issue 17: the UID2 hashes of an audience record (`email_sha256`, `phone_sha256`) are no longer stored; every
reader derives them from `email_normalized` / `phone_e164` (audiences/records.py `column_sql`, the builder cache
in polars). `uid2_hash(text)`: the standard Base64 of the SHA-256 of the text's UTF-8 bytes, the form the import
stored (`normalize.uid2_hash`). `convert_to` is STABLE, so the bytes come from `decode(..., 'escape')` with every
backslash doubled; all of it is IMMUTABLE, so the planner inlines it. Dropping the columns is catalog-only (every
partition at once); the reverse adds them back and fills them with the function."""

from django.db import migrations

UID2_HASH = r"""
CREATE OR REPLACE FUNCTION uid2_hash(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN encode(sha256(decode(replace(value, '\', '\\'), 'escape')), 'base64')
"""

FORWARD = [
    UID2_HASH,
    "ALTER TABLE audiences_record DROP COLUMN email_sha256, DROP COLUMN phone_sha256",
]

REVERSE = [
    # back in their old places' stead (at the end: the readers name their columns)
    "ALTER TABLE audiences_record ADD COLUMN email_sha256 text, ADD COLUMN phone_sha256 text",
    "UPDATE audiences_record SET email_sha256 = uid2_hash(email_normalized), phone_sha256 = uid2_hash(phone_e164) "
    "WHERE email_normalized IS NOT NULL OR phone_e164 IS NOT NULL",
    "DROP FUNCTION uid2_hash(text)",
]


class Migration(migrations.Migration):
    dependencies = [("audiences", "0008_audience_segment_ids")]

    operations = [migrations.RunSQL(FORWARD, reverse_sql=REVERSE)]
