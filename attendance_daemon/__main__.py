"""`python -m attendance_daemon` is the `attendance-daemon` command."""

from .cli import main

main()
