"""The package version, read by hatchling at build time and stamped on every span."""

__version__ = "0.1.0"
