"""The package version, in one place: ``pyproject.toml`` reads it from here (hatch's
``[tool.hatch.version]``) and :mod:`waystation` re-exports it as ``__version__``."""

__version__ = "0.1.0"
