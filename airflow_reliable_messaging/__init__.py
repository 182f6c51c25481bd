"""Apache Airflow provider for reliable audit and event messaging on AWS (Amazon MWAA)."""

__version__ = "0.1.0"
