"""Running sessions: the single-mode state machine (the global lock), validating a start into a plan,
cameras and frame sources, the frame loop (`recognizer`) and the runner that stores a session's result, and
`runtime` that loads models once. May import every domain package below `mqtt`; no MQTT."""
