"""ClickHouse history: connection, versioned schema migrations and the columnar store."""
