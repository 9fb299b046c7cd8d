"""Files: the annotated export video and face crops on disk, and bounded file transfer in MQTT payloads
(never a box path). May import `common` and `recognition`; no MQTT, no SQLite."""
