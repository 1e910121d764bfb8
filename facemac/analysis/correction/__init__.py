"""Estimates that carry the MAC's error: corrections of counted rates (validation.py: without an audit)."""
