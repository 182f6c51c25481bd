"""SnowflakeAuditSetupOperator: create the Snowflake objects of the audit load (idempotent)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_reliable_messaging.domain.identifiers import blank_to_none, parse_arn, snowflake_identifier
from airflow_reliable_messaging.exceptions import ConfigurationError
from airflow_reliable_messaging.links.snowflake import SnowflakeQueryLink
from airflow_reliable_messaging.operators.audit_tables_base import AuditTablesOperator
from airflow_reliable_messaging.sql_templates import quote_literal, render

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context


class SnowflakeAuditSetupOperator(AuditTablesOperator):
    """Create database, schema, external stage and audit tables; optionally the storage
    integration and the loader role's grants (account-level: real Snowflake only).

    Every statement is ``IF NOT EXISTS`` / ``MERGE``: safe to run again at any time.

    :param storage_role_arn: IAM role Snowflake assumes to read the archive (storage integration) (templated).
    :param storage_integration: name of the storage integration the stage uses; None creates a
        stage without one (the local emulator, or credentials managed elsewhere).
    :param create_storage_integration: also run ``sql/setup/storage_integration.sql``
        (needs ``storage_role_arn`` and a role allowed to create integrations).
    :param loader_role: when set, run ``sql/setup/grants.sql`` for this role.
    """

    operator_extra_links = (SnowflakeQueryLink(),)
    template_fields: Sequence[str] = (
        *AuditTablesOperator.template_fields, "storage_integration", "storage_role_arn", "loader_role",
    )  # fmt: skip

    def __init__(
        self,
        *,
        storage_integration: str | None = None,
        create_storage_integration: bool = False,
        storage_role_arn: str | None = None,
        loader_role: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.storage_integration = storage_integration
        self.create_storage_integration = create_storage_integration
        self.storage_role_arn = storage_role_arn
        self.loader_role = loader_role

    def statements(self) -> list[tuple[str, str]]:
        """(file, rendered script) in execution order; validates every identifier first."""
        target = self.target()
        ids = {**target.identifiers(), "stage_url": quote_literal(target.stage_url)}
        integration = blank_to_none(self.storage_integration) or ""
        role_arn, loader_role = blank_to_none(self.storage_role_arn), blank_to_none(self.loader_role)
        if integration:
            ids["storage_integration"] = snowflake_identifier(integration, "storage_integration")
        scripts = [("setup/database.sql", render("setup/database.sql", **ids))]
        if self.create_storage_integration:
            if not integration:
                raise ConfigurationError("storage_integration", "is required to create a storage integration")
            if not role_arn:
                raise ConfigurationError("storage_role_arn", "is required to create a storage integration")
            parse_arn(role_arn, "storage_role_arn", "iam")
            ids["storage_role_arn"] = quote_literal(role_arn)
            scripts.append(("setup/storage_integration.sql", render("setup/storage_integration.sql", **ids)))
        stage_file = "setup/stage_with_integration.sql" if integration else "setup/stage.sql"
        scripts.append((stage_file, render(stage_file, **ids)))
        scripts.append(("setup/tables.sql", render("setup/tables.sql", **ids)))
        if loader_role:
            if not integration:
                raise ConfigurationError("storage_integration", "grants need the stage's storage integration")
            ids["role"] = snowflake_identifier(loader_role, "loader_role")
            scripts.append(("setup/grants.sql", render("setup/grants.sql", **ids)))
        return scripts

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_reliable_messaging.hooks.snowflake import SnowflakeAuditHook

        scripts = self.statements()
        hook = SnowflakeAuditHook(snowflake_conn_id=self.snowflake_conn_id)
        SnowflakeQueryLink.persist(context, self, hook)
        try:
            for name, script in scripts:
                self.log.info("Running sql/%s", name)
                hook.execute_script(script)
        finally:
            hook.close()
        return {"ran": [name for name, _ in scripts], "snowflake_query_ids": hook.executed_query_ids}
