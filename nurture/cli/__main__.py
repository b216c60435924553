"""`python -m nurture.cli`: the same as the `nurture` command."""

from nurture.cli import main

main()
