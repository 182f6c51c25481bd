"""The local-cloud process: AWS emulator, Snowflake emulator and SMTP sink on loopback.

Run with the local-cloud environment's Python (``.venvs/localcloud/bin/python -m local_cloud
serve``). Writes a JSON state file with the endpoints once every server answers, then serves
until SIGTERM/SIGINT.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
ACCESS_KEY = "localcloud"
SECRET_KEY = "localcloud-secret"  # dummy; moto accepts any credentials


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_aws(host: str, port: int):
    """moto's server app behind the project's emulation middlewares, in a thread."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    from local_cloud import faults
    from local_cloud.emulation import EmulationContext, wrap_all

    ctx = EmulationContext(region=REGION, account_id=ACCOUNT_ID, endpoint_url=f"http://{host}:{port}")
    app = wrap_all(DomainDispatcherApplication(create_backend_app), ctx)
    app = faults.wrap(app, ctx)  # outermost: faults also hit the emulated APIs
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, name="aws-emulator", daemon=True).start()
    return server


def start_snowflake(host: str, port: int, aws_endpoint: str):
    """fakesnow's HTTP server, with ``s3://`` read from the AWS emulator through s3fs."""
    import fakesnow.server as fakesnow_server
    import s3fs
    import uvicorn

    fs = s3fs.S3FileSystem(
        key=ACCESS_KEY,
        secret=SECRET_KEY,
        client_kwargs={"endpoint_url": aws_endpoint, "region_name": REGION},
        use_listings_cache=False,
        skip_instance_cache=True,
    )
    fakesnow_server.shared_fs.duck_conn.register_filesystem(fs)
    from local_cloud import snowflake_faults

    app = snowflake_faults.wrap(fakesnow_server.app)  # fault injection, outermost
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="snowflake-emulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the Snowflake emulator did not start")
        time.sleep(0.05)
    return server


def serve(state_file: Path, host: str = "127.0.0.1", exit_with_parent: bool = False) -> None:
    """Serve until SIGTERM/SIGINT or, with ``exit_with_parent``, until the parent process is gone
    (a test process killed with SIGKILL cannot stop its local cloud; the server notices that it was
    re-parented and stops itself)."""
    from local_cloud.smtp_sink import start_smtp_sink

    logging.basicConfig(level=os.environ.get("LOCAL_CLOUD_LOG_LEVEL", "WARNING"))
    for noisy in ("werkzeug", "fakesnow", "fakesnow.server", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    os.environ.setdefault("MOTO_ALLOW_NONEXISTENT_REGION", "true")

    aws_port = _free_port(host)
    aws = start_aws(host, aws_port)
    aws_endpoint = f"http://{host}:{aws_port}"
    sf_port = _free_port(host)
    snowflake = start_snowflake(host, sf_port, aws_endpoint)
    mail_dir = state_file.parent / "mail"
    smtp = start_smtp_sink(mail_dir, host)

    state = {
        "pid": os.getpid(),
        "region": REGION,
        "account_id": ACCOUNT_ID,
        "aws": {"endpoint_url": aws_endpoint, "access_key": ACCESS_KEY, "secret_key": SECRET_KEY},
        "snowflake": {"host": host, "port": sf_port, "protocol": "http", "account": "localcloud"},
        "smtp": {"host": host, "port": smtp.port, "mail_dir": str(mail_dir)},
    }
    tmp = state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.rename(state_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if exit_with_parent:
        parent = os.getppid()
        while not stop.wait(1.0):
            if os.getppid() != parent:
                logging.getLogger(__name__).warning("parent process %s is gone: stopping", parent)
                break
    else:
        stop.wait()
    smtp.stop()
    snowflake.should_exit = True
    aws.shutdown()
