"""attendance-hub: the fleet's central service (ingest of every box's results into PostgreSQL, fleet status,
cross-room reports, one roster for all boxes). See docs/fleet.md."""

from . import fleet_requests, requests  # noqa: F401  (the hub's commands register in requests.HUB_COMMANDS)
