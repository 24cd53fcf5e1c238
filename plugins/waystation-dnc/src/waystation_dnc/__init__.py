"""waystation-dnc: the DNCScrubStation and a local Do-Not-Call store (``waystation dnc ...``)."""

__version__ = "0.1.0"
