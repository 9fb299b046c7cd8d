"""attendance-daemon: face-recognition class attendance driven over MQTT."""

__version__ = "0.1.0"
