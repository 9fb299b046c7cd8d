"""Who is in a section: enrollment (one face per photo), the photos the box keeps, and applying the hub's
rosters. May import `common`, `contract`, `store` and `recognition`; no MQTT."""
