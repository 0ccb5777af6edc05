"""Admin pages of the common core's models (audit log, jobs, uploads), registered on the two admin sites.

They live in the project layer (not in p360.core) because they apply the tenants access rule.
Django's admin autodiscovery imports this module as the `p360` app's `admin`.
"""

from p360.admin import audit, jobs, uploads  # noqa: F401  (registers the ModelAdmins)
