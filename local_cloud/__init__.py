"""The local cloud: real servers on loopback for offline tests and demos.

* AWS — moto in server mode, plus this package's faithful emulation of the AWS behaviours moto
  lacks (``local_cloud.emulation``): SQS message-move tasks, SNS FIFO archive and replay.
* Snowflake — fakesnow's HTTP server, able to read ``s3://`` objects from the AWS emulator.
* Email — an SMTP sink that keeps every message it receives as an ``.eml`` file.

The servers run in their own virtual environment (``.venvs/localcloud``; their pins conflict
with MWAA's) as one child process. ``local_cloud.control`` (standard library only) starts and
stops that process from any Python, and hands out Airflow connections that point at it.
The provider's runtime code never imports this package.
"""
