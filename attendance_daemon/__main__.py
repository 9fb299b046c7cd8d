"""`python -m attendance_daemon` is the `attendance-daemon` command."""

from .cli.daemon_cli import main

main()
