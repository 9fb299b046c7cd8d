"""Foundations every package may use: errors with HTTP-like codes, the one id and name rule, time formats,
and confining client-supplied paths. Imports nothing of the project."""
