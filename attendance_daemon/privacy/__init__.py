"""Biometric data leaves on time and on request: retention of evidence files and erasure (forget a
student, delete a session). May import `common`, `config`, `store` and `roster`; no MQTT."""
