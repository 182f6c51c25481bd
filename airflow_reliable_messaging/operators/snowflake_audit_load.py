"""SnowflakeAuditLoadOperator: load the audit archive of a data interval into Snowflake, once."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.domain import archive_layout as layout
from airflow_reliable_messaging.exceptions import ConfigurationError, LoadError
from airflow_reliable_messaging.links.aws import S3PrefixLink, persist_links
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink
from airflow_reliable_messaging.operators.audit_tables_base import AuditIntervalOperator

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context
    from airflow_reliable_messaging.runs.audit_load import LoadSettings

# The load itself (runs/audit_load.py and the domain logic it uses) is imported by
# execute(): a DAG file that declares the operator does not pay for it at parse time.
DISCOVERY_MODES = ("auto", "manifests", "listing")
BAD_FILE_POLICIES = ("fail", "quarantine")


class SnowflakeAuditLoadOperator(AuditIntervalOperator):
    """Load the archived audit records of a data interval (plus a lookback) into Snowflake.

    Finds the records through the archive's per-batch manifests (every one archived since the
    window opened, however late), or, for archives written by other producers (the seed's
    ``YYYY/MM/DD/HH/MM/SS/<messageID>`` layout, no manifests), by listing the time folders and
    writing index manifests. Every key a manifest names must be one the archive writes; objects in
    the time folders that are not are reported, one by one, and their neighbours loaded. COPYs the
    manifests not loaded yet
    into a raw VARIANT table, MERGEs them into ``AUDIT_RECORD`` keyed by message id, and loads
    JSON payloads up to ``max_json_payload_bytes`` into ``AUDIT_PAYLOAD`` (binary payloads stay
    in S3, referenced by ``S3_URI``). A ledger of loaded files and Snowflake's load history make
    reruns change nothing.

    Where the archive and tables are, and the interval: see ``AuditIntervalOperator``.

    :param lookback: how far before the interval to look for late-arriving records.
    :param discovery: ``auto`` (manifests when the archive has any, else listing),
        ``manifests`` or ``listing``.
    :param max_json_payload_bytes: JSON payloads up to this size are loaded as VARIANT.
    :param on_bad_file: ``fail`` (load the rest, then fail the task) or ``quarantine`` (copy the
        bad manifest or object to the quarantine prefix, record it in the ledger, succeed; one
        that could not be read still fails the task and is retried by the next run).
    :param kms_key_id: KMS key for the objects this operator writes (SSE-S3 when unset).
    :param claim_wait: how long a load waits while another run loads the same schema (every load
        of a schema shares its landing tables, so they run one at a time); then it fails, naming
        that run, having loaded nothing. ``timedelta(0)``: fail at once.
    :param claim_lease: how long a load's claim on the schema lasts without a refresh (it is
        refreshed before every COPY and before promoting and the ledger): a claim left by a crashed
        run expires this long after its last refresh; a retry of the same DAG run takes it over at
        once. Longer than the longest single COPY.

    Returns (XCom) a small report: records seen / of the interval / loaded / updated / skipped as
    already loaded / failed with reasons, files (and objects not in the layout), bytes, payloads,
    warnings (e.g. nothing found) and the Snowflake query ids.
    """

    operator_extra_links = (S3PrefixLink(), SnowflakeQueryLink())
    template_fields: Sequence[str] = (*AuditIntervalOperator.template_fields, "kms_key_id")
    ui_color = "#c6e6f7"

    def __init__(
        self,
        *,
        lookback: timedelta = timedelta(days=1),
        discovery: str = "auto",
        max_json_payload_bytes: int = 8 * 1024 * 1024,
        on_bad_file: str = "fail",
        kms_key_id: str | None = None,
        claim_wait: timedelta = timedelta(minutes=15),
        claim_lease: timedelta = timedelta(hours=1),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if discovery not in DISCOVERY_MODES:
            raise ConfigurationError("discovery", f"{discovery!r} is not one of {', '.join(DISCOVERY_MODES)}")
        if on_bad_file not in BAD_FILE_POLICIES:
            raise ConfigurationError("on_bad_file", f"{on_bad_file!r} is not one of {', '.join(BAD_FILE_POLICIES)}")
        if max_json_payload_bytes < 0:
            raise ConfigurationError("max_json_payload_bytes", "must not be negative")
        if claim_wait < timedelta(0):
            raise ConfigurationError("claim_wait", "must not be negative")
        if claim_lease < timedelta(minutes=1):
            raise ConfigurationError("claim_lease", "must be at least a minute")
        self.lookback = lookback
        self.discovery = discovery
        self.max_json_payload_bytes = max_json_payload_bytes
        self.on_bad_file = on_bad_file
        self.kms_key_id = kms_key_id
        self.claim_wait = claim_wait
        self.claim_lease = claim_lease

    def settings(self, context: Context) -> LoadSettings:
        """The rendered parameters, validated (errors name the parameter), for this DAG run."""
        from airflow_reliable_messaging.domain.audit_load import load_window
        from airflow_reliable_messaging.domain.identifiers import optional_kms_key
        from airflow_reliable_messaging.runs.audit_load import LoadSettings

        target, (start, end) = self.target(), self.interval()
        try:
            window = load_window(start, end, self.lookback)
        except ValueError as exc:
            raise ConfigurationError("interval", str(exc)) from None
        return LoadSettings(
            target=target, run_id=str(context.get("run_id") or f"manual__{datetime.now(UTC).isoformat()}"),
            interval=(start, end), window=window, discovery=self.discovery,
            max_json_payload_bytes=self.max_json_payload_bytes, on_bad_file=self.on_bad_file,
            kms_key_id=optional_kms_key(self.kms_key_id), claim_wait=self.claim_wait, claim_lease=self.claim_lease,
        )  # fmt: skip

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.hooks.s3 import S3ArchiveHook
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook
        from airflow_reliable_messaging.runs.audit_load import AuditLoadRun

        settings = self.settings(context)
        target = settings.target
        s3 = self.aws_hook(S3ArchiveHook)
        snowflake = SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id)
        persist_links(context, self, s3, (S3PrefixLink, {"bucket": target.bucket, "prefix": target.prefix}))
        SnowflakeQueryLink.persist(context, self, snowflake)
        try:
            report = AuditLoadRun(settings, s3, snowflake, self.log).run()
        finally:
            snowflake.close()
        self.log.info(
            "Loaded %s: %d records seen, %d inserted, %d updated, %d already loaded, %d failed; "
            "%d manifest(s) copied, %d skipped by load history",
            report["window"]["interval"], report["records"]["seen"], report["records"]["inserted"],
            report["records"]["updated"], report["records"]["already_loaded"], report["records"]["failed"],
            report["files"]["copied"], report["files"]["skipped_by_load_history"],
        )  # fmt: skip
        files = report["files"]
        if files["not_quarantined"]:
            names = ", ".join(layout.printable(f["file"]) for f in files["failed"] if not f["quarantined"])
            raise LoadError(
                f"{files['not_quarantined']} file(s) could not be loaded ({names[:2000]}); the rest was loaded and "
                "the failed files stay in S3 for a rerun. Reasons are in the task log and the XCom."
            )
        return report

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the archive prefix in; AUDIT_RECORD (records loaded) and AUDIT_PAYLOAD out."""
        from airflow_reliable_messaging import lineage
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

        target = self.target()
        result = lineage.result_of(self, task_instance)
        records = result.get("records") or {}
        account = lineage.snowflake_account(SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id))
        db, schema = target.database, target.schema
        return lineage.operator_lineage(
            inputs=[lineage.s3(target.bucket, target.prefix)],
            outputs=[
                lineage.with_statistics(
                    lineage.snowflake(account, db, schema, "AUDIT_RECORD"),
                    None if not records else int(records.get("inserted", 0)) + int(records.get("updated", 0)),
                ),
                lineage.snowflake(account, db, schema, "AUDIT_PAYLOAD"),
            ],
            query_ids=result.get("snowflake_query_ids") or [],
            source=f"snowflake://{account.lower()}",
        )
