"""The weekly audit load, end to end, on the local cloud (run through scripts/demo.sh).

1. starts the local cloud (AWS emulator, Snowflake emulator, SMTP sink) on loopback;
2. seeds an audit archive in the seed pipeline's layout for the last two weeks: hundreds of
   records, 1 KB to 6 MB, JSON and binary, several producers and message types, a few malformed;
   one producer of the week before goes silent last week, a new one starts;
3. runs the one-time Snowflake setup DAG, then the weekly_audit_load DAG with Airflow's own
   DAG test runner (dag.test), exactly as deployed, for the week before (quietly) and last week;
4. prints the load report, the reconciliation, the weekly report, where the SNS messages and
   the email landed (the email rendered as HTML, its chart, and a screenshot where Chromium is
   installed), and the run-monitoring rows of the tasks; then stops everything.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # local_cloud; an installed airflow_reliable_messaging (a wheel) comes first
HOME = Path(tempfile.mkdtemp(prefix="arm-demo-airflow-"))
os.environ.update(
    AIRFLOW_HOME=str(HOME),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
    AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{HOME}/airflow.db",
    AIRFLOW__LOGGING__LOGGING_LEVEL=os.environ.get("DEMO_LOG_LEVEL", "WARNING"),
)

from local_cloud.control import LocalCloud  # noqa: E402
from local_cloud.dag_runner import load_dag, run_dag, task_states, xcom  # noqa: E402
from local_cloud.email_preview import save_preview  # noqa: E402
from local_cloud.sample_archive import PRODUCERS, seed_sample_archive  # noqa: E402

ARTIFACTS = ROOT / ".artifacts" / "report" / "demo"
TASKS = ("load_week", "reconcile", "report", "publish_report", "email_report", "week_reconciled")
# The week before last has a producer that goes silent last week; last week a new one starts.
PREVIOUS_PRODUCERS = {**PRODUCERS, "fraud-screening": ["riskScore"]}
LAST_PRODUCERS = {**PRODUCERS, "claims-portal": ["claimDraft", "claimSubmitted"]}


def say(text: str = "") -> None:
    print(text, flush=True)


def last_full_week(now: datetime) -> tuple[datetime, datetime]:
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    return monday - timedelta(days=7), monday


def state_of(run) -> str:
    state = run.get_state() if hasattr(run, "get_state") else run.state
    return str(getattr(state, "value", state))


def drain(sqs, queue_url: str) -> list[dict]:
    received = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages"):
        received += batch
        sqs.delete_message_batch(
            QueueUrl=queue_url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        )
    return received


def show_email(mail) -> None:
    """Save the email as a mail client shows it (HTML with its chart inline) and say where; with
    Chromium installed, a screenshot too (the demo needs no browser: without one it says how)."""
    paths = save_preview(mail, ARTIFACTS, "weekly-report")
    say(f"   Rendered email (open in a browser): {paths['html']}")
    say(f"   The message as sent: {paths['eml']}")
    for name, path in paths.items():
        if name not in ("eml", "html"):
            say(f"   Inline image {name}: {path}")
    shot = ARTIFACTS / "weekly-report-screenshot.png"
    chromium = shutil.which(os.environ.get("CHROMIUM") or "chromium") or shutil.which("chromium-browser")
    if chromium:
        done = subprocess.run(
            [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=760,2600",
             f"--screenshot={shot}", paths["html"].as_uri()],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
        say(f"   Screenshot (headless Chromium, 760 px wide): {shot}" if done.returncode == 0 and shot.exists() else
            f"   Screenshot failed (chromium exit {done.returncode}); open the HTML above instead")  # fmt: skip
    else:
        say(
            f"   Screenshot: no Chromium here; `scripts/test.sh tests/integration/ui/test_report_email.py` writes desktop and phone "
            f"screenshots to {ARTIFACTS.parent}/ (scripts/bootstrap.sh browser installs Chromium)"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=300, help="records to seed (default 300)")
    args = parser.parse_args()

    started = time.monotonic()
    import airflow

    import airflow_reliable_messaging as arm

    say(f"== Airflow {airflow.__version__}; airflow-reliable-messaging {arm.__version__} from {Path(arm.__file__).parent}")
    say("== Starting the local cloud (AWS, Snowflake and SMTP emulators on loopback)")
    with LocalCloud(workdir=HOME / "local-cloud") as cloud:
        os.environ.update(cloud.airflow_environ())
        import boto3

        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True, cwd=HOME)
        s3, sns, sqs = (boto3.client(s, **cloud.boto3_kwargs()) for s in ("s3", "sns", "sqs"))
        bucket, prefix = "acme-audit-archive", "audit"
        s3.create_bucket(Bucket=bucket)
        topic = sns.create_topic(Name="audit-weekly-report")["TopicArn"]
        queue_url = sqs.create_queue(QueueName="audit-report-subscriber")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
        variables = {
            "audit_archive_bucket": bucket,
            "audit_archive_prefix": prefix,
            "audit_report_topic_arn": topic,
            "audit_report_email_to": "compliance@acme.example, platform-oncall@acme.example",
        }
        # As on MWAA: Variables come from AWS Secrets Manager through Airflow's secrets backend.
        secrets = boto3.client("secretsmanager", **cloud.boto3_kwargs())
        for name, value in variables.items():
            secrets.create_secret(Name=f"airflow/variables/{name}", SecretString=value)
        os.environ["AIRFLOW__SECRETS__BACKEND"] = "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend"
        os.environ["AIRFLOW__SECRETS__BACKEND_KWARGS"] = json.dumps({
            "connections_prefix": "airflow/connections", "variables_prefix": "airflow/variables",
            "endpoint_url": cloud.aws_endpoint_url, "region_name": cloud.region,
        })  # fmt: skip
        say(f"   Variables in Secrets Manager: {', '.join(f'airflow/variables/{n}' for n in variables)}")

        week_start, week_end = last_full_week(datetime.now(UTC))
        before = week_start - timedelta(days=7)
        previous_count = max(args.records * 9 // 10, 1)
        say(
            f"== Seeding s3://{bucket}/{prefix}/ with {previous_count} audit records for {before:%Y-%m-%d} .. {week_start:%Y-%m-%d} "
            f"and {args.records} for {week_start:%Y-%m-%d} .. {week_end:%Y-%m-%d}"
        )
        seed_sample_archive(s3, bucket, prefix, before, week_start, count=previous_count, large=1, malformed=2, seed=3,
                            producers=PREVIOUS_PRODUCERS)  # fmt: skip
        seeded = seed_sample_archive(s3, bucket, prefix, week_start, week_end, count=args.records, producers=LAST_PRODUCERS)
        kinds = {k: sum(1 for r in seeded if r.kind == k) for k in ("json", "binary", "malformed-json")}
        say(
            f"   {kinds['json']} JSON, {kinds['binary']} binary, {kinds['malformed-json']} malformed JSON; "
            f"{sum(r.size for r in seeded):,} bytes; largest {max(r.size for r in seeded):,} bytes"
        )

        say("== Running DAG snowflake_audit_setup (database, schema, stage, tables)")
        setup = run_dag(load_dag(ROOT / "dags" / "snowflake_audit_setup.py"))
        say(f"   {setup.state}")

        dag = load_dag(ROOT / "dags" / "weekly_audit_load.py")
        say(f"== Running DAG weekly_audit_load with dag.test() for the week before, {before:%Y-%m-%d} .. {week_start:%Y-%m-%d}")
        earlier = run_dag(dag, week_start)
        say(f"   {state_of(earlier)}")
        drain(sqs, queue_url)  # its subscriber read that week's report then
        mails_before = len(cloud.emails())
        say(f"== Running DAG weekly_audit_load with dag.test() for last week, {week_start:%Y-%m-%d} .. {week_end:%Y-%m-%d}")
        run = run_dag(dag, week_end)
        states = task_states(run)
        for task_id in TASKS:
            say(f"   {task_id:<15} {states.get(task_id)}")

        load = xcom(run, "load_week") or {}
        say("\n== Load report (XCom of load_week)")
        say(json.dumps({k: v for k, v in load.items() if k != "snowflake_query_ids"}, indent=2))
        say(f"   Snowflake query ids: {len(load.get('snowflake_query_ids', []))} statements")
        reconciled = xcom(run, "reconcile") or {}
        say("\n== Reconciliation (XCom of reconcile)")
        say(json.dumps(reconciled, indent=2))
        say(
            f"   {reconciled.get('compared', 0)} of the {len(seeded)} seeded objects compared with Snowflake, "
            f"{reconciled.get('matched', 0)} match"
        )

        report = xcom(run, "report")
        if report:
            from airflow_reliable_messaging.domain.report import render_text

            say("\n== Weekly audit report")
            say(render_text(report))

        received = drain(sqs, queue_url)
        say(f"== SNS: {len(received)} report message(s) published to {topic}, received by subscriber queue {queue_url}")
        summary = next((json.loads(m["Body"]) for m in received if json.loads(m["Body"]).get("kind") == "summary"), None)
        if summary:
            say(f"   summary message: {json.dumps(summary)[:400]}")
        mails = cloud.emails()[mails_before:]
        say(f"\n== Email: {len(mails)} message(s) received by the SMTP sink ({cloud.mail_dir})")
        for mail in mails:
            parts = [p.get_content_type() for p in mail.walk() if not p.is_multipart()]
            say(f"   To: {mail['To']}\n   Subject: {mail['Subject']}\n   Parts: {', '.join(parts)}")
        if mails:
            show_email(mails[-1])

        import snowflake.connector

        with snowflake.connector.connect(**cloud.snowflake_connect_kwargs("AUDIT", "OPS")) as conn:
            ops = (
                conn.cursor()
                .execute(
                    "SELECT TASK_ID, STATE, LOADED, ROUND(DURATION_SECONDS, 1) FROM ARM_OPERATION "
                    "WHERE DAG_ID = 'weekly_audit_load' AND RUN_ID = %s ORDER BY ENDED_AT",
                    (run.run_id,),
                )
                .fetchall()
            )
        say(f"\n== Run monitoring: {len(ops)} row(s) in AUDIT.OPS.ARM_OPERATION for last week's run (one per task try)")
        for task_id, state, loaded, seconds in ops:  # no duration where dag.test() sets no start (2.11)
            say(
                f"   {task_id:<15} {state:<8} {'-' if seconds is None else seconds:>6} s{f'  loaded {loaded}' if loaded is not None else ''}"
            )

        ok = state_of(run) == "success" and len(received) > 0 and len(mails) == 1 and len(ops) == len(states)
        ok = ok and reconciled.get("compared") == reconciled.get("matched") == len(seeded)
        say(f"\n== {'Done' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s; stopping the local cloud.")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
