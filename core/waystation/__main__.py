"""``python -m waystation``."""

from waystation.cli.main import main

main()
