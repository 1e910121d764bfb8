"""Procedural demo faces: a labelled CelebA-layout training set and four annotation targets with known attribute
priors, rendered by the package so the whole pipeline runs with nothing downloaded. A test bed, not real people."""

from facemac.data.demo.cache import DemoData, demo_digest, ensure_demo
from facemac.data.demo.generate import DemoParams
from facemac.data.demo.profiles import DEMO_ATTRIBUTES, PROFILES, TARGET_NAMES, Profile

__all__ = ["DEMO_ATTRIBUTES", "PROFILES", "TARGET_NAMES", "DemoData", "DemoParams", "Profile", "demo_digest",
           "ensure_demo"]
