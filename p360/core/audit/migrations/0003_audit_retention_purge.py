"""Issue 16: the audit log is kept 2 years (document 004 section 8), then archived and deleted.

The append-only trigger (0002) stays: UPDATE is always refused, and so is DELETE, except in the one path
retention uses: a transaction that has set `p360.audit_retention = 'on'` may delete rows older than 2 years.
A row younger than that cannot be deleted by the application role in any way (trust item 32). The 2 years
are written here, in the database, so no setting can shorten them.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE'
       AND current_setting('p360.audit_retention', true) = 'on'
       AND OLD.created_at < now() - interval '2 years' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""

BACKWARD = """
CREATE OR REPLACE FUNCTION audit_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql;
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_append_only")]
    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
