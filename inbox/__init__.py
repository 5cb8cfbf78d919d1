"""The communications engine: communications, messages, lines and addresses, ingestion, delivery, audit."""
