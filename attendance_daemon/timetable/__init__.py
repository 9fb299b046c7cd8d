"""The weekly timetable: lessons in the box's zone (`week`), its entries between API, store and core
(`entries`), and the pure lesson planner (`planner`). May import `common`, `contract` and `store` rows; no MQTT."""
