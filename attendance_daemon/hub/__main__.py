"""`python -m attendance_daemon.hub` is the `attendance-hub` command."""

from .cli import main

main()
