"""Comparison DAGs written with the stock Amazon/Snowflake/SMTP operators (parse-cost benchmark only)."""
