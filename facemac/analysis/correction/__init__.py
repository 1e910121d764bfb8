"""Corrections of the MAC's counted rates for its errors: audits (a target's images labelled by a person; audit.py),
the checkpoint's validation split (validation.py: without an audit), and the engine that applies them point-wise and
per bootstrap replicate (engine.py)."""
