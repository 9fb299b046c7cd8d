"""The wire formats other programs are written against: pydantic models of every MQTT payload (`api`) and
the hub's sealed roster message. Imports only `common`; no MQTT, no SQLite."""
