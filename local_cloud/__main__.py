"""``python -m local_cloud serve [--state-file F] [--exit-with-parent]`` — run the local cloud in the foreground."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m local_cloud", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the AWS, Snowflake and SMTP emulators on loopback")
    serve.add_argument("--state-file", type=Path, help="where to write the endpoints as JSON")
    serve.add_argument("--exit-with-parent", action="store_true",
                       help="stop when the process that started this one is gone (even if it was SIGKILLed)")  # fmt: skip
    args = parser.parse_args()
    if args.command == "serve":
        from local_cloud.server import serve as run

        state_file = args.state_file or Path(tempfile.mkdtemp(prefix="local-cloud-")) / "state.json"
        print(f"local cloud: endpoints will be written to {state_file}", flush=True)
        run(state_file, exit_with_parent=args.exit_with_parent)


if __name__ == "__main__":
    main()
