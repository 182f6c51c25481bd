"""Snowsight link to the last Snowflake query a task ran (or the account's query history).

The operator stores the account's Snowsight address once (``SnowflakeQueryLink.persist`` with its
Snowflake hook, no network call); the query id comes from the task's result, whose
``snowflake_query_ids`` lists every statement it ran. A task that failed before returning links
to the query history, where its statements are listed too.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow_reliable_messaging._compat import BaseOperatorLink, snowflake_conn_params, xcom_class

if TYPE_CHECKING:
    from airflow_reliable_messaging._compat import Context

log = logging.getLogger(__name__)
SNOWSIGHT = "https://app.snowflake.com"


def snowsight_base(account: str, region: str | None = None) -> str:
    """Snowsight's address for an account: ``<org>-<name>`` → ``/<org>/<name>``; a locator →
    ``/<region>/<locator>`` (``us-west-2`` when the connection names no region)."""
    account = account.strip().lower().removesuffix(".snowflakecomputing.com")
    if "." in account:  # locator with its region in the identifier: xy12345.eu-west-1[.aws]
        account, region = account.split(".", 1)
    elif "-" in account and not region:  # organisation-account name
        org, name = account.split("-", 1)
        return f"{SNOWSIGHT}/{quote(org)}/{quote(name)}"
    return f"{SNOWSIGHT}/{quote(region or 'us-west-2')}/{quote(account)}"


class SnowflakeQueryLink(BaseOperatorLink):
    """Snowsight's page for the task's last query."""

    name = "Snowflake Query"
    key = "arm_snowflake_query"

    def format_link(self, base: str | None, query_ids: list[str] | None) -> str:
        if not base:
            return ""
        if query_ids:
            return f"{base}/#/compute/history/queries/{quote(str(query_ids[-1]), safe='')}/detail"
        return f"{base}/#/compute/history/queries"

    def get_link(self, operator: Any, *, ti_key: Any) -> str:
        try:
            fields = xcom_class().get_value(key=self.key, ti_key=ti_key) or {}
            result = xcom_class().get_value(key="return_value", ti_key=ti_key)
        except Exception:  # noqa: BLE001 — a link never breaks the UI
            return ""
        ids = result.get("snowflake_query_ids") if isinstance(result, dict) else None
        return self.format_link(fields.get("base"), ids if isinstance(ids, list) else None)

    @classmethod
    def persist(cls, context: Context, operator: Any, hook: Any) -> None:
        """Store the Snowsight address of ``hook``'s account (a SnowflakeHook); never fails a task."""
        ti = (context or {}).get("ti")
        if ti is None or not getattr(operator, "do_xcom_push", True):
            return
        try:
            params = snowflake_conn_params(hook)
            ti.xcom_push(key=cls.key, value={"base": snowsight_base(params["account"], params.get("region") or None)})
        except Exception as exc:  # noqa: BLE001 — a link is a convenience, never a task failure
            log.warning("Could not store the %s link: %s", cls.name, exc)
