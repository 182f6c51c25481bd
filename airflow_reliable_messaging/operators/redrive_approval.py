"""Airflow 3.1+ only: a human approval before a large redrive (the standard provider's HITL
``ApprovalOperator``). Import it only when ``_compat.AIRFLOW_V_3_1_PLUS``."""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_reliable_messaging._compat import Context


class RedriveApprovalOperator(ApprovalOperator):
    """Asks for approval when the inspection says more than ``threshold`` messages would move.

    At or below the threshold, and for dry runs, it approves by itself (nothing to ask), so runs
    with small DLQs, and tests, never wait for a human. Without an answer before
    ``response_timeout`` the default, ``Reject``, applies: downstream tasks are skipped.

    :param inspect_task_id: the dry-run inspection whose count is compared with ``threshold``.
    :param threshold: messages above which a human must approve (templated).
    :param dry_run: a dry run approves by itself (templated).
    """

    template_fields = (*ApprovalOperator.template_fields, "threshold", "dry_run")

    def __init__(
        self, *, inspect_task_id: str = "inspect", threshold: int | str = 1000, dry_run: bool | str = False, **kwargs: Any
    ) -> None:
        kwargs.setdefault("subject", "Approve the dead-letter redrive?")
        kwargs.setdefault("defaults", ApprovalOperator.REJECT)
        super().__init__(**kwargs)
        self.inspect_task_id = inspect_task_id
        self.threshold = threshold
        self.dry_run = dry_run

    def execute(self, context: Context) -> Any:
        from airflow_reliable_messaging.domain.redrive import needs_approval

        inspection = context["ti"].xcom_pull(task_ids=self.inspect_task_id) or {}
        summary = inspection.get("dry_run_summary") or {}
        would = needs_approval(inspection, self.threshold, self.dry_run)
        if would is None:
            self.log.info("Dry run, or %s message(s) would move (threshold %s): approved without asking",
                          summary.get("would_redrive", 0), self.threshold)  # fmt: skip
            return {"chosen_options": [self.APPROVE], "params_input": {}, "auto_approved": True}
        self.body = (
            f"**{would}** message(s) would be redriven from `{inspection.get('dlq')}` "
            f"in **{inspection.get('mode')}** mode ({inspection.get('reason')}).\n\n"
            f"```json\n{json.dumps(summary, indent=2, default=str)[:4000]}\n```"
        )
        return super().execute(context)
