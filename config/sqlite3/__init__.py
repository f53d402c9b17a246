"""SQLite for the embedded deployment, with the database file readable by the portal's user only."""
