"""The attendance record: per-track votes and presence (`presence`), punctuality, history and its alerts,
the contract's results, CSV/PDF reports with their fonts, and the live roster. May import `common`,
`contract`, `store`, `config`, `recognition` and `media`; no MQTT."""
