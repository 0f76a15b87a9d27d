"""The library's SQL, and all of it: `store` writes the sidecar (schema, migrations,
backups, the change log), `queries` reads it for the window on a read-only connection.
No other module holds a SQL statement."""
