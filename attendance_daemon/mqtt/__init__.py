"""MQTT transport: the paho link (LWT, reconnect, retained truth), topic names, the mosquitto bridge and the
synchronous API client. May import `common`, `contract` and `config`; no domain logic, no SQLite."""
