"""The common core shared by every app (exports, and more to come)."""
