"""Per-frame recognition building blocks: detect (BlazeFace, HOG), track, encode (dlib 128-d), match.
Imports nothing of the project; no MQTT, no SQLite."""
