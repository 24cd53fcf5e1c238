"""The ``waystation`` command line."""
