"""De-identify sensitive data in what the project publishes, configured like an SNS data
protection policy (pure: no I/O)::

    {"Name": "...", "Version": "2021-06-01",
     "Configuration": {"CustomDataIdentifier": [{"Name": "EmployeeId", "Regex": "EID-\\d{9}-US"}]},
     "Statement": [{"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/CreditCardNumber",
                                       "EmployeeId"],
                    "DataDirection": "Inbound",
                    "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]}

Managed identifiers (SNS names): ``CreditCardNumber`` (13-19 digits, spaces or dashes allowed,
Luhn-checked), ``EmailAddress``, ``AwsSecretKey`` (40 characters of base64 alphabet within 50
characters after a keyword such as ``aws_secret_access_key`` or ``secret key``, as SNS requires a
keyword for it). SNS has no managed identifier for access key *ids*: :data:`AWS_ACCESS_KEY_ID`
is a ready custom identifier for them. ``MaskConfig`` replaces each character of a finding with
``MaskWithCharacter`` (default ``*``); ``RedactConfig`` cuts the finding out; a ``Deny``
statement refuses the text (:class:`SensitiveDataDenied`, naming identifiers, never values);
``Audit`` statements change nothing. ``DataDirection`` and ``Principal`` are not evaluated: the
project applies every statement to what it is about to publish.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_reliable_messaging.exceptions import ConfigurationError

MANAGED_PREFIX = re.compile(r"^arn:aws(?:-cn|-us-gov)?:dataprotection::aws:data-identifier/(?P<name>[A-Za-z0-9]+)$")
POLICY_VERSION = "2021-06-01"
MAX_CUSTOM_REGEX = 200  # SNS's limit on a custom data identifier's regex length
AWS_ACCESS_KEY_ID = {"Name": "AwsAccessKeyId", "Regex": r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"}
_SECRET_KEYWORDS = re.compile(
    r"aws[_ ]?secret[_ ]?access[_ ]?key|secret[_ ]?access[_ ]?key|secret[_ ]?key|credentials|set-awscredential",
    re.IGNORECASE,
)
_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b")


class SensitiveDataDenied(ValueError):
    """A ``Deny`` statement matched: the text must not be published."""

    def __init__(self, identifiers: list[str]) -> None:
        self.identifiers = identifiers
        super().__init__(f"sensitive data found ({', '.join(identifiers)}); the data protection policy denies it")


def luhn_valid(digits: str) -> bool:
    total, double = 0, False
    for ch in reversed(digits):
        n = ord(ch) - 48
        if double:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
        double = not double
    return total % 10 == 0


def _credit_cards(text: str) -> list[tuple[int, int]]:
    spans = []
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(m.span())
    return spans


def _emails(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _EMAIL.finditer(text)]


def _secret_keys(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _SECRET.finditer(text) if _SECRET_KEYWORDS.search(text[max(0, m.start() - 50) : m.start()])]


MANAGED: dict[str, Callable[[str], list[tuple[int, int]]]] = {
    "CreditCardNumber": _credit_cards,
    "EmailAddress": _emails,
    "AwsSecretKey": _secret_keys,
}


@dataclass(frozen=True)
class _Statement:
    identifiers: tuple[str, ...]
    action: str  # "mask" | "redact" | "deny" | "audit"
    mask_char: str = "*"


@dataclass(frozen=True)
class DataProtectionPolicy:
    """A parsed, validated policy; :meth:`apply` de-identifies a text."""

    statements: tuple[_Statement, ...]
    finders: dict[str, Callable[[str], list[tuple[int, int]]]]
    document: dict

    @classmethod
    def parse(cls, policy: Any, field: str = "data_protection_policy") -> DataProtectionPolicy:
        if isinstance(policy, str):
            try:
                policy = json.loads(policy)
            except ValueError as exc:
                raise ConfigurationError(field, f"is not JSON ({exc.msg})") from None
        if not isinstance(policy, dict) or not isinstance(policy.get("Statement"), list) or not policy["Statement"]:
            raise ConfigurationError(field, "needs a non-empty Statement list")
        if policy.get("Version", POLICY_VERSION) != POLICY_VERSION:
            raise ConfigurationError(field, f"Version must be {POLICY_VERSION}")
        finders: dict[str, Callable[[str], list[tuple[int, int]]]] = {}
        custom = ((policy.get("Configuration") or {}).get("CustomDataIdentifier")) or []
        if not isinstance(custom, list):
            raise ConfigurationError(field, "Configuration.CustomDataIdentifier must be a list")
        for item in custom:
            name, regex = (item or {}).get("Name"), (item or {}).get("Regex")
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,128}", name) or name in MANAGED:
                raise ConfigurationError(field, f"custom data identifier name {str(name)[:40]!r} is invalid or taken")
            if not isinstance(regex, str) or not regex or len(regex) > MAX_CUSTOM_REGEX:
                raise ConfigurationError(field, f"custom data identifier {name}: Regex must be 1..{MAX_CUSTOM_REGEX} characters")
            try:
                compiled = re.compile(regex)
            except re.error as exc:
                raise ConfigurationError(field, f"custom data identifier {name}: invalid Regex ({exc})") from None
            finders[name] = lambda text, c=compiled: [m.span() for m in c.finditer(text) if m.end() > m.start()]
        statements = []
        for i, raw in enumerate(policy["Statement"]):
            if not isinstance(raw, dict):
                raise ConfigurationError(field, f"Statement[{i}] is not an object")
            ids = raw.get("DataIdentifier")
            if not isinstance(ids, list) or not ids:
                raise ConfigurationError(field, f"Statement[{i}].DataIdentifier must be a non-empty list")
            names = []
            for ident in ids:
                match = MANAGED_PREFIX.match(ident) if isinstance(ident, str) else None
                name = match.group("name") if match else ident
                if match and name not in MANAGED:
                    raise ConfigurationError(field, f"Statement[{i}]: managed data identifier {name!r} is not supported")
                if not match and name not in finders:
                    raise ConfigurationError(field, f"Statement[{i}]: data identifier {str(ident)[:80]!r} is neither managed nor custom")
                names.append(name)
                if match:
                    finders[name] = MANAGED[name]
            statements.append(_statement(raw.get("Operation"), tuple(names), f"{field}: Statement[{i}].Operation"))
        return cls(tuple(statements), finders, policy)

    def findings(self, text: str) -> dict[str, int]:
        """How many findings of each identifier the policy names (for logs: never the values)."""
        names = {n for s in self.statements for n in s.identifiers}
        return {n: len(self.finders[n](text)) for n in sorted(names) if self.finders[n](text)}

    def apply(self, text: str) -> str:
        for statement in self.statements:
            if statement.action == "audit":
                continue
            spans = _merge([span for name in statement.identifiers for span in self.finders[name](text)])
            if not spans:
                continue
            if statement.action == "deny":
                raise SensitiveDataDenied([n for n in statement.identifiers if self.finders[n](text)])
            out, last = [], 0
            for start, end in spans:
                out.append(text[last:start])
                if statement.action == "mask":
                    out.append(statement.mask_char * (end - start))
                last = end
            out.append(text[last:])
            text = "".join(out)
        return text

    def apply_json(self, value: Any) -> Any:
        """De-identify every string (keys kept) of a JSON-like value."""
        if isinstance(value, str):
            return self.apply(value)
        if isinstance(value, dict):
            return {k: self.apply_json(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.apply_json(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = str(value)
            masked = self.apply(text)
            return value if masked == text else masked
        return value


def _statement(operation: Any, names: tuple[str, ...], where: str) -> _Statement:
    if not isinstance(operation, dict) or len(operation) != 1:
        raise ConfigurationError(where, "needs exactly one of Deidentify, Deny or Audit")
    (kind, config), = operation.items()
    if kind == "Audit":
        return _Statement(names, "audit")
    if kind == "Deny":
        return _Statement(names, "deny")
    if kind != "Deidentify" or not isinstance(config, dict) or len(config) != 1:
        raise ConfigurationError(where, "Deidentify needs exactly one of MaskConfig or RedactConfig")
    if "RedactConfig" in config:
        return _Statement(names, "redact")
    mask = config.get("MaskConfig")
    if not isinstance(mask, dict):
        raise ConfigurationError(where, "Deidentify needs MaskConfig or RedactConfig")
    char = mask.get("MaskWithCharacter", "*")
    if not isinstance(char, str) or len(char) != 1 or char in '"\\' or not char.isprintable() or char.isspace():
        raise ConfigurationError(where, f"MaskWithCharacter {str(char)[:5]!r} must be one printable character, not a quote or backslash")
    return _Statement(names, "mask", char)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def deidentify(text: str, policy: Any) -> str:
    """``text`` with ``policy`` (a dict, JSON text or a parsed policy) applied."""
    parsed = policy if isinstance(policy, DataProtectionPolicy) else DataProtectionPolicy.parse(policy)
    return parsed.apply(text)
