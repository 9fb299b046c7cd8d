"""attendance-hub: the fleet's central service (ingest of every box's results into PostgreSQL, fleet status,
cross-room reports, one roster for all boxes). See docs/fleet.md."""
