"""De-identify sensitive data in what the project publishes, configured like an SNS data
protection policy (pure: no I/O)::

    {"Name": "...", "Version": "2021-06-01",
     "Configuration": {"CustomDataIdentifier": [{"Name": "EmployeeId", "Regex": "EID-\\d{9}-US"}]},
     "Statement": [{"DataIdentifier": ["arn:aws:dataprotection::aws:data-identifier/CreditCardNumber",
                                       "EmployeeId"],
                    "DataDirection": "Inbound",
                    "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}}]}

SNS itself no longer offers message data protection to new customers (SNS developer guide,
"Amazon SNS message data protection availability change"), so this client-side masking in the same
policy shape is what most users can get. Managed identifiers (SNS names, with AWS's detection rules
where AWS documents them — "Using managed data identifiers in Amazon SNS" and the sensitive data
type pages):

- ``CreditCardNumber``: 13-19 digits, spaces or dashes allowed, Luhn-checked (no keyword needed
  here, unlike SNS: masking more, never less).
- ``EmailAddress``.
- ``AwsSecretKey``: 40 characters of base64 alphabet within 50 characters after a keyword such as
  ``aws_secret_access_key`` or ``secret key``. SNS has no managed identifier for access key *ids*:
  :data:`AWS_ACCESS_KEY_ID` is a ready custom identifier for them.
- ``IpAddress``: IPv4 (four octets 0-255) and IPv6 addresses, validated as addresses; no keyword.
- ``PhoneNumber-BR|DE|ES|FR|GB|IT|US``: the country's numbering plan (lengths, leading digits; US:
  area code and exchange not starting with 0 or 1). As AWS documents: with a keyword (``phone``,
  ``tel``, ``mobile``, ``fax``, ``contact``, ...) near, the national form counts; without one, only
  the international form (``+<country code>``).
- ``Ssn-US``: ``AAA-GG-SSSS`` (dashes, spaces or none) with a keyword (``ssn``, ``ss#``, ``social
  security``) near; never area 000, 666 or 9xx, group 00 or serial 0000.
- ``BankAccountNumber-DE|ES|FR|GB|IT``: IBANs of that country — its length and BBAN structure, the
  ISO 13616 mod-97 check — with one of AWS's keywords for that country (``iban``, ``account
  number``, ``bban``, ...) near.

"Near" is within :data:`KEYWORD_DISTANCE` characters before or after (AWS does not document the
distance); keywords are case-insensitive, and a space in one also matches no space, ``_`` or ``-``,
as AWS documents. Custom identifiers are named regexes (``Configuration.CustomDataIdentifier``,
Python ``re`` syntax, at most 200 characters).

``MaskConfig`` replaces each character of a finding with ``MaskWithCharacter`` (default ``*``);
``RedactConfig`` cuts the finding out; a ``Deny`` statement refuses the text
(:class:`SensitiveDataDenied`, naming identifiers, never values); ``Audit`` statements change
nothing. ``DataDirection`` and ``Principal`` are not evaluated: the project applies every statement
to what it is about to publish.

Masking never breaks the document it masks: :meth:`DataProtectionPolicy.apply_json` masks the
values (and keys) of a JSON document, a masked number becoming a string, so the result is still
JSON; :meth:`~DataProtectionPolicy.apply_html` masks the text, attribute values and comments of an
HTML document, never its tags; :func:`deidentify_payload` picks the right one for a message body.
The keys enclosing a JSON value count as text near it, so ``{"phone": "0207 946 0958"}`` and
``{"ssn": {"primary": "123-45-6789"}}`` find the keyword.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_reliable_messaging.exceptions import ConfigurationError

MANAGED_PREFIX = re.compile(r"^arn:aws(?:-cn|-us-gov)?:dataprotection::aws:data-identifier/(?P<name>[A-Za-z0-9]+(?:-[A-Z]{2})?)\Z")
KEYWORD_DISTANCE = 50  # characters between a keyword and the data it qualifies
POLICY_VERSION = "2021-06-01"
MAX_CUSTOM_REGEX = 200  # SNS's limit on a custom data identifier's regex length
AWS_ACCESS_KEY_ID = {"Name": "AwsAccessKeyId", "Regex": r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"}
_SECRET_KEYWORDS = re.compile(
    r"aws[_ ]?secret[_ ]?access[_ ]?key|secret[_ ]?access[_ ]?key|secret[_ ]?key|credentials|set-awscredential",
    re.IGNORECASE,
)
_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# local part: RFC 5322 atext (an apostrophe, as in o'brien@..., is part of the address)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9.!#$%&'*+/=?^_`{|}~-])[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)


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


def _keywords(*words: str) -> re.Pattern:
    """Keywords as AWS matches them: any case; a space also matches none, ``_`` or ``-``."""
    alternatives = ["[ _-]?".join(re.escape(part) for part in word.split(" ")) for word in words]
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(alternatives) + r")(?![a-z0-9])", re.IGNORECASE)


def _near(keywords: re.Pattern, text: str, start: int, end: int) -> bool:
    return bool(keywords.search(text[max(0, start - KEYWORD_DISTANCE) : start]) or keywords.search(text[end : end + KEYWORD_DISTANCE]))


_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w)(?!\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")


def _ip_addresses(text: str) -> list[tuple[int, int]]:
    spans = []
    for pattern, kind in ((_IPV4, ipaddress.IPv4Address), (_IPV6, ipaddress.IPv6Address)):
        for m in pattern.finditer(text):
            try:
                address = kind(m.group())
            except ValueError:
                continue
            if not address.is_unspecified:  # "::" alone is punctuation more often than an address
                spans.append(m.span())
    return spans


_SSN = re.compile(r"(?<![\w-])(?P<area>\d{3})(?P<sep>[- ]?)(?P<group>\d{2})(?P=sep)(?P<serial>\d{4})(?![\w-])")
_SSN_KEYWORDS = _keywords("social security", "ss#", "ssn")


def _us_ssns(text: str) -> list[tuple[int, int]]:
    """US social security numbers as issued (SSA: no area 000, 666 or 900-999, no group 00, no serial 0000)."""
    return [
        m.span() for m in _SSN.finditer(text)
        if m["area"] not in ("000", "666") and m["area"][0] != "9" and m["group"] != "00" and m["serial"] != "0000"
        and _near(_SSN_KEYWORDS, text, *m.span())
    ]  # fmt: skip


_PHONE_KEYWORDS = ("cell", "contact", "fax", "fax number", "mobile", "phone", "phone number", "tel", "telephone",
                   "telephone number")  # fmt: skip
_PHONE_KEYWORDS_BR = ("cel", "celular", "fone", "móvel", "número residencial", "numero residencial", "telefone")


@dataclass(frozen=True)
class _NumberingPlan:
    """A country's phone numbers: calling code, national trunk prefix, the national number."""

    code: str
    trunk: str  # "" none; "0" (or "1") written before a national number
    trunk_required: bool
    national: str  # the national significant number, separators allowed


# ITU-T E.164 national numbering plans (lengths and leading digits), as the national regulators publish them.
_PLANS = {
    "US": _NumberingPlan("1", "1", False, r"\(?[2-9]\d{2}\)?[ .-]?[2-9]\d{2}[ .-]?\d{4}"),  # NANP: NXX NXX XXXX
    "GB": _NumberingPlan("44", "0", True, r"[1-9](?:[ .-]?\d){8,9}"),
    "FR": _NumberingPlan("33", "0", True, r"[1-9](?:[ .-]?\d){8}"),
    "DE": _NumberingPlan("49", "0", True, r"[1-9](?:[ ./-]?\d){6,10}"),
    "ES": _NumberingPlan("34", "", False, r"[6-9](?:[ .-]?\d){8}"),
    "IT": _NumberingPlan("39", "", False, r"(?:3(?:[ .-]?\d){8,9}|0(?:[ .-]?\d){5,10})"),  # the 0 is part of the number
    "BR": _NumberingPlan("55", "0", False, r"\(?[1-9]{2}\)?[ .-]?(?:9[ .-]?\d{4}|[2-5]\d{3})[ .-]?\d{4}"),  # mobile 9 + 8
}


def _regex_finder(pattern: re.Pattern[str]) -> Callable[[str], list[tuple[int, int]]]:
    """A custom data identifier's finder: every non-empty match of its regex."""
    return lambda text: [m.span() for m in pattern.finditer(text) if m.end() > m.start()]


def _phone_finder(country: str) -> Callable[[str], list[tuple[int, int]]]:
    plan = _PLANS[country]
    keywords = _keywords(*_PHONE_KEYWORDS, *(_PHONE_KEYWORDS_BR if country == "BR" else ()))
    trunk = f"(?P<trunk>{re.escape(plan.trunk)})[ .-]?" if plan.trunk else ""
    pattern = re.compile(
        rf"(?<![\w+])(?<!\d[ ./-])(?:(?P<intl>\+{plan.code}[ .-]?(?:\(0\)[ .-]?)?)|{trunk})?(?P<national>{plan.national})"
        r"(?!\w)(?![ ./-]?\d)"  # not a piece of a longer run of digit groups
    )

    def find(text: str) -> list[tuple[int, int]]:
        spans = []
        for m in pattern.finditer(text):
            if m["intl"] or ((m.groupdict().get("trunk") or not plan.trunk_required) and _near(keywords, text, *m.span())):
                spans.append(m.span())
        return spans

    return find


# ISO 13616 IBANs: length and BBAN structure per country (the SWIFT IBAN registry); AWS's keywords.
_IBAN = {
    "DE": (22, r"\d{18}"),
    "ES": (24, r"\d{20}"),
    "FR": (27, r"\d{10}[A-Z0-9]{11}\d{2}"),
    "GB": (22, r"[A-Z]{4}\d{14}"),
    "IT": (27, r"[A-Z]\d{10}[A-Z0-9]{12}"),
}
_BANK_KEYWORDS = ("account code", "account number", "accountno#", "accountnumber#", "bban", "customer account id",
                  "customer account number", "customer bank account id", "iban")  # fmt: skip
_BANK_KEYWORDS_BY_COUNTRY = {
    "DE": ("bankleitzahl", "geheimzahl", "kartennummer", "kontonummer", "kreditkartennummer", "sepa"),
    "ES": (
        "código cuenta",
        "código cuenta bancaria",
        "cuenta cliente id",
        "número cuenta bancaria cliente",
        "número cuenta cliente",
    ),  # fmt: skip
    "FR": ("code bancaire", "compte bancaire", "numéro de compte"),
    "GB": ("sepa",),
    "IT": ("codice bancario", "conto bancario", "numero di conto"),
}


def iban_valid(iban: str) -> bool:
    """ISO 13616: the first four characters moved to the end, letters as 10-35, the number mod 97 is 1."""
    text = (iban[4:] + iban[:4]).upper()
    if not text.isalnum():
        return False
    return int("".join(str(int(ch, 36)) for ch in text)) % 97 == 1


def _iban_finder(country: str) -> Callable[[str], list[tuple[int, int]]]:
    length, bban = _IBAN[country]
    groups, rest = divmod(length - 4, 4)
    printed = rf"{country}\d{{2}}(?: ?[A-Za-z0-9]{{4}}){{{groups}}}" + (rf" ?[A-Za-z0-9]{{{rest}}}" if rest else "")
    pattern = re.compile(rf"(?<![A-Za-z0-9]){printed}(?![A-Za-z0-9])")
    keywords = _keywords(*_BANK_KEYWORDS, *_BANK_KEYWORDS_BY_COUNTRY[country])

    def find(text: str) -> list[tuple[int, int]]:
        spans = []
        for m in pattern.finditer(text):
            iban = m.group().replace(" ", "").upper()
            if re.fullmatch(bban, iban[4:]) and iban_valid(iban) and _near(keywords, text, *m.span()):
                spans.append(m.span())
        return spans

    return find


MANAGED: dict[str, Callable[[str], list[tuple[int, int]]]] = {
    "CreditCardNumber": _credit_cards,
    "EmailAddress": _emails,
    "AwsSecretKey": _secret_keys,
    "IpAddress": _ip_addresses,
    "Ssn-US": _us_ssns,
    **{f"PhoneNumber-{country}": _phone_finder(country) for country in _PLANS},
    **{f"BankAccountNumber-{country}": _iban_finder(country) for country in _IBAN},
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
            except json.JSONDecodeError as exc:
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
            finders[name] = _regex_finder(compiled)
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

    def apply(self, text: str, context: str = "") -> str:
        """``text`` de-identified. ``context``: text that stands before it (a JSON key), searched for
        keywords and findings that reach into ``text``, never changed itself."""
        offset = len(context) + 1 if context else 0
        for statement in self.statements:
            if statement.action == "audit":
                continue
            whole = f"{context}\n{text}" if context else text
            found = [(max(a - offset, 0), b - offset) for name in statement.identifiers for a, b in self.finders[name](whole) if b > offset]
            spans = _merge(found)
            if not spans:
                continue
            if statement.action == "deny":
                raise SensitiveDataDenied([n for n in statement.identifiers if self.finders[n](whole)])
            out, last = [], 0
            for start, end in spans:
                out.append(text[last:start])
                if statement.action == "mask":
                    out.append(statement.mask_char * (end - start))
                last = end
            out.append(text[last:])
            text = "".join(out)
        return text

    def apply_json(self, value: Any, key: str = "", *, keys: bool = True) -> Any:
        """De-identify a JSON-like value on its structure: every string, key (``keys=False``: the
        keys are kept, for a document whose keys are a schema read by code) and number (a masked
        number becomes a string), each with its enclosing keys as context (the nearest last, one a
        line: ``{"ssn": {"primary": "123-45-6789"}}`` finds the keyword as SNS does in the text),
        so the result stays JSON. A key that masks into another key of the same object gets
        `` (2)``, `` (3)``... (nothing dropped)."""
        if isinstance(value, str):
            return self.apply(value, key)
        if isinstance(value, JsonNumber):
            masked = self.apply(value.text, key)
            return value if masked == value.text else masked
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            outer = key[-KEYWORD_DISTANCE:]  # farther keys cannot be near anything in the value
            for k, v in value.items():
                name = _unique_name(self.apply(str(k), key), out) if keys else k
                out[name] = self.apply_json(v, f"{outer}\n{k}" if outer else str(k), keys=keys)
            return out
        if isinstance(value, list | tuple):
            return [self.apply_json(v, key, keys=keys) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = json.dumps(value)
            masked = self.apply(text, key)
            return value if masked == text else masked
        return value

    def apply_html(self, html: str) -> str:
        """De-identify an HTML document without breaking its markup: each text run and each
        attribute value that carries content (``href``, ``title``, ``alt``, ``data-*``...; not
        presentation such as ``style`` or ``class``) is unescaped, de-identified and escaped again,
        comments are de-identified as text; tag and attribute names are kept as they are."""
        from html import escape, unescape

        def value(match: re.Match) -> str:
            if match.group(1).strip().rstrip("=").strip().lower() in _PRESENTATION_ATTRIBUTES:
                return match.group(0)
            quoted = match.group(2)[:1] in ("'", '"')
            text = unescape(match.group(2)[1:-1] if quoted else match.group(2))
            masked = self.apply(text)
            if masked == text:
                return match.group(0)
            quote = match.group(2)[0] if quoted else '"'
            return f"{match.group(1)}{quote}{escape(masked, quote=True)}{quote}"

        def markup(tag: str) -> str:
            if tag.startswith("<!--"):
                return f"<!--{self.apply(tag[4:-3])}-->"
            return _ATTRIBUTE.sub(value, tag)

        out, last = [], 0
        for tag in _TAG.finditer(html):
            out.append(escape(self.apply(unescape(html[last : tag.start()])), quote=False))
            out.append(markup(tag.group()))
            last = tag.end()
        out.append(escape(self.apply(unescape(html[last:])), quote=False))
        return "".join(out)


def _statement(operation: Any, names: tuple[str, ...], where: str) -> _Statement:
    if not isinstance(operation, dict) or len(operation) != 1:
        raise ConfigurationError(where, "needs exactly one of Deidentify, Deny or Audit")
    ((kind, config),) = operation.items()
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


_TAG = re.compile(r"<!--.*?-->|<[^<>]*>", re.DOTALL)
# Attributes that only lay the document out: never masked (a custom identifier matching CSS would
# break the email's styling, and they carry no content).
_PRESENTATION_ATTRIBUTES = frozenset({
    "style", "class", "id", "width", "height", "colspan", "rowspan", "align", "valign", "border",
    "cellpadding", "cellspacing", "bgcolor", "color", "lang", "dir", "role", "type", "rel", "target",
    "charset", "http-equiv", "media", "span", "scope",
})  # fmt: skip
_ATTRIBUTE = re.compile(r"""(\s[^\s"'>/=]+\s*=\s*)("[^"]*"|'[^']*'|[^\s"'=<>`]+)""")


def _unique_name(name: str, taken: dict[str, Any]) -> str:
    """``name``, or ``name (2)``, ``name (3)``... if ``taken`` has it."""
    unique, n = name, 1
    while unique in taken:
        n += 1
        unique = f"{name} ({n})"
    return unique


def _every_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object with every value kept: a repeated key's later values get `` (2)``, `` (3)``...
    (a plain parse keeps only the last value, and a masked copy would lose or leak the others)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        out[_unique_name(key, out)] = value
    return out


class NotDeidentifiable(ValueError):
    """A payload that is not text: no data identifier can be looked for in it."""


def deidentify(text: str, policy: Any) -> str:
    """``text`` with ``policy`` (a dict, JSON text or a parsed policy) applied, as plain text."""
    parsed = policy if isinstance(policy, DataProtectionPolicy) else DataProtectionPolicy.parse(policy)
    return parsed.apply(text)


def deidentify_payload(data: bytes, policy: DataProtectionPolicy) -> bytes:
    """A message body de-identified without breaking it: JSON on its structure (still JSON, compact
    when something was masked; a repeated key's later values renamed `` (2)``..., never dropped),
    other UTF-8 text as text; unchanged bytes when nothing was found.
    Raises NotDeidentifiable for a body that is not UTF-8 text, SensitiveDataDenied on ``Deny``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotDeidentifiable("a binary payload cannot be searched for sensitive data") from None
    try:
        # NaN/Infinity are not JSON: such a body is masked as text. Numbers are kept as written
        # (JsonNumber); a repeated key keeps every value (_every_key).
        document = json.loads(text, parse_constant=_not_json, parse_float=JsonNumber.parse, parse_int=JsonNumber.parse,
                              object_pairs_hook=_every_key)  # fmt: skip
    except ValueError:
        masked = policy.apply(text)
        return data if masked == text else masked.encode()
    except RecursionError:  # hostile nesting: refused for this message, never a crash of the run
        raise NotDeidentifiable("the JSON payload is nested too deeply to be searched for sensitive data") from None
    try:
        masked_doc = policy.apply_json(document)
    except RecursionError:
        raise NotDeidentifiable("the JSON payload is nested too deeply to be searched for sensitive data") from None
    return data if masked_doc == document else _dumps_as_written(masked_doc).encode()


def _not_json(constant: str) -> float:
    raise ValueError(f"{constant} is not JSON")


@dataclass(frozen=True)
class JsonNumber:
    """A JSON number as its producer wrote it. Through a float, ``12345678901234567.89`` would
    come back as ``1.2345678901234568e+16`` and ``1E2`` as ``100.0``: an amount next to a masked
    e-mail address must reach the consumer unchanged."""

    text: str

    @classmethod
    def parse(cls, text: str) -> JsonNumber:
        if not math.isfinite(float(text)):
            raise ValueError(f"{text[:40]} does not fit a float")  # masked as text: still JSON after
        return cls(text)


def _dumps_as_written(document: Any) -> str:
    """Compact JSON of ``document`` with every JsonNumber written exactly as it was read: each is
    dumped as a placeholder string carrying a random nonce (no payload can forge it), then replaced."""
    nonce, numbers = secrets.token_hex(16), []

    def placeholder(value: Any) -> str:
        if not isinstance(value, JsonNumber):
            raise TypeError(f"{type(value).__name__} is not JSON")
        numbers.append(value.text)
        return f"\0{nonce}:{len(numbers) - 1}\0"

    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=placeholder)
    text = re.sub(rf'"\\u0000{nonce}:(\d+)\\u0000"', lambda m: numbers[int(m.group(1))], text)
    # A lone surrogate (JSON allows "\ud800") cannot be written as UTF-8: as the escape it came as.
    # Only a string holds one, so its escape is JSON there.
    return _LONE_SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
