"""``python -m tokmem_agent`` = the ``tokmem`` command (also what ``accelerate launch -m tokmem_agent`` runs)."""

from .cli import main

main()
