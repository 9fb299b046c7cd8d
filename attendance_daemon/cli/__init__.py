"""The commands: `attendance-daemon` (`daemon_cli`), `attendancectl` for a box and the hub (`ctl`,
`ctl_hub`), `check`, and the AsyncAPI generator. The top of the house: may import any package."""
