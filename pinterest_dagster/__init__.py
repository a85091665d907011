"""Pinterest data pipeline: Kafka events to a Delta lakehouse, orchestrated by Dagster."""
