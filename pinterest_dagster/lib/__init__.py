"""Reusable building blocks (settings, Spark, Kafka, IO managers) shared by every part of the pipeline."""
