"""Pure domain logic: no I/O, no Airflow imports. Everything here is unit-testable in isolation."""
