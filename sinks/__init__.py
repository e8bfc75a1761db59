"""liqwatch history in ClickHouse.

* ``sinks.clickhouse.connect.connect(settings)``: a client for a server or the embedded chDB.
* ``sinks.clickhouse.migrate.migrate(client, database)``: versioned schema migrations.
* ``sinks.clickhouse.store.Store(client, database)``: columnar writes of every record.
* ``sinks.service.run_sink(settings, stop)``: the Kafka -> ClickHouse sink (``liqwatch sink``).
* ``sinks.sql_cli.run_sql(client, query, fmt, readonly)``: ``liqwatch sql``.
* ``sinks.bench``: ``liqwatch bench sink``.
"""
