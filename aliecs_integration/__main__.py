"""``python -m aliecs_integration``: the ``aliecs-integration`` command line."""

from aliecs_integration.cli.main import main

main()
