"""The package version, written here only (pyproject.toml reads it; the converter records it)."""

__version__ = "0.1.0"
