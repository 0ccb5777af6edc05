"""One date format everywhere (issue 15): "6 Dec 2026", "6 Dec 2026 14:05". Django's locale formats win over the
DATE_FORMAT settings, so the admin's dates follow p360.core.formatting through this format module."""

DATE_FORMAT = "j M Y"
DATETIME_FORMAT = "j M Y H:i"
SHORT_DATE_FORMAT = "j M Y"
SHORT_DATETIME_FORMAT = "j M Y H:i"
MONTH_DAY_FORMAT = "j F"
YEAR_MONTH_FORMAT = "F Y"
TIME_FORMAT = "H:i"
