"""The version of descend (read by the build from here: one place to change it)."""

__version__ = "0.1.0"
