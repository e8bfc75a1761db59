"""No-docker local stack: a real Kafka broker and a real ClickHouse HTTP server on 127.0.0.1."""
