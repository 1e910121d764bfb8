"""Faces as the MAC saw them: annotated rows redrawn with the reader, geometry and crop the annotation used, for people
to look at (audit pages, galleries, report strips). ``load_crops`` is the one door."""

from facemac.faces.crops import CropReader, load_crops

__all__ = ["CropReader", "load_crops"]
