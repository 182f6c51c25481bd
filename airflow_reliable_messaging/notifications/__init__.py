"""Notifiers: run monitoring into Snowflake and SNS (``monitoring.OperationsNotifier``)."""
