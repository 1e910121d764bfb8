"""facemac: train a Massive Attribute Classifier, annotate face datasets, measure real-vs-synthetic drift."""

from facemac.errors import ConfigError, DataError, FacemacError

__version__ = "0.1.0"
__all__ = ["FacemacError", "ConfigError", "DataError", "__version__"]
