"""``python -m composer``: the same as the ``composer`` command."""
from .cli import main

main(prog_name="composer")
