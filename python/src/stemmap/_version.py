"""The package version, in one place (read by ``__init__``, the model files and the build)."""

__version__ = "0.1.0"
