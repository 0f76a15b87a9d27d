"""The library's SQL, and all of it: `store` writes the sidecar (opening, connections,
transactions, migrations, backups, the change log) through its parts `photos`, `tags`,
`decisions` and `vectors`; `schema` holds the tables of each version; `queries` reads it
for the window on a read-only connection; `sql` holds the fragments both sides share.
No other module holds a SQL statement."""
