"""``python -m kgrec``: the command line (also what ``torchrun -m kgrec`` runs)."""

from kgrec.cli import main

main()
