"""Bombora Company Surge intent data: global (public schema), stored by week, read by every org's builder."""
