"""Email through the SMTP provider's hook: multipart messages (plain text + HTML)."""

from __future__ import annotations

from email.message import EmailMessage

from airflow.providers.smtp.hooks.smtp import SmtpHook

from airflow_reliable_messaging._compat import smtp_client


class ReportSmtpHook(SmtpHook):
    """SmtpHook that sends a ready ``EmailMessage`` (the stock hook builds HTML-only bodies)."""

    def send_message(self, message: EmailMessage) -> None:
        if message["From"] is None:
            message["From"] = self.from_email or "airflow@localhost"
        client = smtp_client(self.get_conn())
        if client is None:  # pragma: no cover - get_conn raises first
            raise RuntimeError("the SMTP client is not initialised")
        for attempt in range(1, self.smtp_retry_limit + 1):
            try:
                client.send_message(message)
                return
            except Exception:
                if attempt == self.smtp_retry_limit:
                    raise
