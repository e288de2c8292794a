"""``python -m evals --data … --out …``: the ``tokmem eval`` command on its own (see evals/cli.py)."""

from .cli import main

main()
