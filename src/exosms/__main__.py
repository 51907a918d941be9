"""``python -m exosms`` is the ``exosms`` command."""

from exosms.cli import main

main()
