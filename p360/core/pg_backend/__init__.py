"""django-tenants' PostgreSQL backend, minus the redundant `SET search_path` round trips (see base.py)."""
