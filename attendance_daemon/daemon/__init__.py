"""The appliance: MQTT API, single-mode state machine, session worker, systemd integration."""
