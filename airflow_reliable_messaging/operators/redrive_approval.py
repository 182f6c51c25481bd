"""A human approval before a large redrive: the standard provider's HITL ``ApprovalOperator`` on
Airflow 3.1+. Older Airflow (2.11, 3.0) has no human-in-the-loop operators: there, above the
threshold, the task fails before anything moves (triggering again with a higher threshold is the
approval), so the safety holds on every line and the module imports everywhere."""

from __future__ import annotations

import json
from typing import Any

from airflow_reliable_messaging._compat import AIRFLOW_V_3_1_PLUS, AIRFLOW_VERSION, BaseOperator, Context
from airflow_reliable_messaging.base_aws import DRY_RUN_FIELD, DRY_RUN_PARAMETER
from airflow_reliable_messaging.exceptions import ConfigurationError

if AIRFLOW_V_3_1_PLUS:
    from airflow.providers.standard.operators.hitl import ApprovalOperator as _Approval
else:
    _Approval = BaseOperator  # type: ignore[misc, assignment]  # before 3.1 nobody can be asked: see the class

APPROVE, REJECT = "Approve", "Reject"
# ApprovalOperator's own arguments; without it they have nothing to configure.
_HITL_ONLY = ("subject", "body", "defaults", "multiple", "notifiers", "assigned_users", "response_timeout",
              "ignore_downstream_trigger_rules", "fail_on_reject")  # fmt: skip


class RedriveApprovalOperator(_Approval):
    """Asks for approval when the inspection says more than ``threshold`` messages would move.

    At or below the threshold, and for dry runs, it approves by itself (nothing to ask), so runs
    with small DLQs, and tests, never wait for a human. Without an answer before
    ``response_timeout`` the default, ``Reject``, applies: downstream tasks are skipped.
    Before Airflow 3.1 nobody can be asked: above the threshold the task fails, naming
    ``approval_threshold``, before anything moves; triggering again with a higher threshold is
    the approval.

    :param inspect_task_id: the dry-run inspection whose count is compared with ``threshold``.
    :param threshold: messages above which a human must approve (templated).
    :param dry_run: a dry run approves by itself (templated). Stored as ``is_dry_run`` (its rendered template's name), so ``dry_run()`` stays BaseOperator's.
    """

    template_fields = (*_Approval.template_fields, "threshold", DRY_RUN_FIELD)
    parameter_attributes = DRY_RUN_PARAMETER  # the dry_run parameter's attribute: is_dry_run

    def __init__(
        self, *, inspect_task_id: str = "inspect", threshold: int | str = 1000, dry_run: bool | str = False, **kwargs: Any
    ) -> None:
        if AIRFLOW_V_3_1_PLUS:
            kwargs.setdefault("subject", "Approve the dead-letter redrive?")
            kwargs.setdefault("defaults", REJECT)
        else:
            for name in _HITL_ONLY:
                kwargs.pop(name, None)
        super().__init__(**kwargs)
        self.inspect_task_id = inspect_task_id
        self.threshold = threshold
        self.is_dry_run = dry_run  # not self.dry_run: BaseOperator.dry_run() stays a method (base_aws.DRY_RUN_FIELD)

    def execute(self, context: Context) -> Any:
        from airflow_reliable_messaging.domain.redrive import needs_approval

        inspection = context["ti"].xcom_pull(task_ids=self.inspect_task_id) or {}
        summary = inspection.get("dry_run_summary") or {}
        would = needs_approval(inspection, self.threshold, self.is_dry_run)
        if would is None:
            self.log.info("Dry run, or %s message(s) would move (threshold %s): approved without asking",
                          summary.get("may_redrive", 0), self.threshold)  # fmt: skip
            return {"chosen_options": [APPROVE], "params_input": {}, "auto_approved": True}
        if not AIRFLOW_V_3_1_PLUS:
            raise ConfigurationError(
                "approval_threshold",
                f"{would} message(s) would be redriven from {inspection.get('dlq')}, more than {self.threshold}, and "
                f"Airflow {AIRFLOW_VERSION} has no human-in-the-loop approval (Airflow 3.1+): check the inspection "
                f"and trigger again with approval_threshold of at least {would}",
            )
        self.body = (
            f"**{would}** message(s) would be redriven from `{inspection.get('dlq')}` "
            f"in **{inspection.get('mode')}** mode ({inspection.get('reason')}).\n\n"
            f"```json\n{json.dumps(summary, indent=2, default=str)[:4000]}\n```"
        )
        return super().execute(context)
