"""attendance-hub: the fleet's central service (ingest of every box's results into PostgreSQL, fleet status,
cross-room reports and record exports, one roster for all boxes). See docs/fleet.md."""

from . import fleet_requests, record_requests, requests  # noqa: F401  (the hub's commands register in HUB_COMMANDS)
