"""``python -m cratedig.cli``: the same as the ``cratedig`` command."""

from cratedig.cli import main

main()
