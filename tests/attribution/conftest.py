"""Browser fixtures for tests/attribution/test_browser.py (defined in tests/browser/conftest.py)."""

from tests.browser.conftest import browser_page, chromium, live_url, screenshot_dir  # noqa: F401
