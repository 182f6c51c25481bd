"""Masking with SNS data-protection-policy JSON (pure; the seed's expense-report example)."""

from __future__ import annotations

import json
import re

import pytest

from airflow_reliable_messaging.domain.masking import (
    AWS_ACCESS_KEY_ID,
    DataProtectionPolicy,
    NotDeidentifiable,
    SensitiveDataDenied,
    deidentify,
    deidentify_payload,
    iban_valid,
    luhn_valid,
)
from airflow_reliable_messaging.exceptions import ConfigurationError

CC = "arn:aws:dataprotection::aws:data-identifier/CreditCardNumber"
EMAIL = "arn:aws:dataprotection::aws:data-identifier/EmailAddress"
SECRET = "arn:aws:dataprotection::aws:data-identifier/AwsSecretKey"

# The seed's blog example: policy, published payload, what the reporting subscriber received.
EXPENSE_POLICY = {
    "Name": "__example_data_protection_policy",
    "Description": "This policy protects sensitive data in expense reports",
    "Version": "2021-06-01",
    "Configuration": {"CustomDataIdentifier": [{"Name": "MyCompanyEmployeeId", "Regex": r"EID-\d{9}-US"}]},
    "Statement": [{
        "Principal": ["arn:aws:iam::123456789012:role/ReportingApplicationRole"],
        "DataDirection": "Outbound",
        "DataIdentifier": ["MyCompanyEmployeeId", CC],
        "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}},
    }],
}  # fmt: skip
EXPENSE = """{
    "expense": {
        "currency": "USD",
        "amount": 175.99,
        "category": "Office Supplies",
        "status": "Approved",
        "created_at": "2023-10-17T20:03:44+0000",
        "updated_at": "2023-10-19T14:21:51+0000"
    },
    "payment": {
        "credit_card_network": "Visa",
        "credit_card_number": "4539894458086459"
    },
    "reviewer": {
        "employee_id": "EID-123456789-US",
        "employee_location": "Seattle, USA"
    },
    "contractor": {
        "employee_id": "CID-000012348-CA",
        "employee_location": "Vancouver, CAN"
    }
}"""
EXPENSE_MASKED = """{
    "expense": {
        "currency": "USD",
        "amount": 175.99,
        "category": "Office Supplies",
        "status": "Approved",
        "created_at": "2023-10-17T20:03:44+0000",
        "updated_at": "2023-10-19T14:21:51+0000"
    },
    "payment": {
        "credit_card_network": "Visa",
        "credit_card_number": "################"
    },
    "reviewer": {
        "employee_id": "################",
        "employee_location": "Seattle, USA"
    },
    "contractor": {
        "employee_id": "CID-000012348-CA",
        "employee_location": "Vancouver, CAN"
    }
}"""


def _policy(ids, operation, custom=()):
    return {"Version": "2021-06-01", "Configuration": {"CustomDataIdentifier": list(custom)},
            "Statement": [{"DataIdentifier": ids, "Operation": operation}]}  # fmt: skip


MASK = {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "#"}}}
REDACT = {"Deidentify": {"RedactConfig": {}}}


def test_the_seed_expense_report_example_exactly():
    assert deidentify(EXPENSE, EXPENSE_POLICY) == EXPENSE_MASKED
    assert json.loads(deidentify(EXPENSE, json.dumps(EXPENSE_POLICY)))["payment"]["credit_card_number"] == "#" * 16


def test_the_expense_example_as_a_json_value():
    policy = DataProtectionPolicy.parse(EXPENSE_POLICY)
    assert policy.apply_json(json.loads(EXPENSE)) == json.loads(EXPENSE_MASKED)
    assert policy.findings(EXPENSE) == {"CreditCardNumber": 1, "MyCompanyEmployeeId": 1}


@pytest.mark.parametrize("number, valid", [
    ("4539894458086459", True), ("4111111111111111", True), ("378282246310005", True), ("6011111111111117", True),
    ("4539894458086458", False), ("1234567812345678", False),
])  # fmt: skip
def test_luhn(number, valid):
    assert luhn_valid(number) is valid


def test_credit_cards_only_when_luhn_valid_with_separators():
    policy = _policy([CC], MASK)
    text = "paid 4111 1111 1111 1111 and 4111-1111-1111-1112, order 1234567890123, card 378282246310005."
    assert deidentify(text, policy) == "paid ################### and 4111-1111-1111-1112, order 1234567890123, card ###############."
    assert deidentify("id 45398944580864591234", policy) == "id 45398944580864591234"  # 20 digits: not a card


def test_email_addresses_mask_and_redact():
    text = "from a.b+c@example.co.uk to ops@corp.example: hi"
    assert deidentify(text, _policy([EMAIL], MASK)) == "from " + "#" * 19 + " to " + "#" * 16 + ": hi"
    assert deidentify(text, _policy([EMAIL], REDACT)) == "from  to : hi"
    assert deidentify("not an email: a@b", _policy([EMAIL], MASK)) == "not an email: a@b"


def test_aws_secret_key_needs_a_keyword_and_access_key_ids_by_custom_identifier():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    policy = _policy([SECRET, "AwsAccessKeyId"], MASK, [AWS_ACCESS_KEY_ID])
    text = f'{{"aws_access_key_id": "AKIAIOSFODNN7EXAMPLE", "aws_secret_access_key": "{secret}"}}'
    assert deidentify(text, policy) == '{"aws_access_key_id": "' + "#" * 20 + '", "aws_secret_access_key": "' + "#" * 40 + '"}'
    sha1 = "da39a3ee5e6b4b0d3255bfef95601890afd80709"  # 40 characters without a keyword near: kept
    assert deidentify(f"checksum {sha1}", policy) == f"checksum {sha1}"


def test_custom_identifiers_and_several_statements_in_order():
    policy = {
        "Version": "2021-06-01",
        "Configuration": {"CustomDataIdentifier": [{"Name": "Ticket", "Regex": r"TCK-\d{4}"}]},
        "Statement": [
            {"DataIdentifier": ["Ticket"], "Operation": REDACT},
            {"DataIdentifier": [EMAIL], "Operation": {"Deidentify": {"MaskConfig": {}}}},
            {"DataIdentifier": [CC], "Operation": {"Audit": {}}},
        ],
    }
    assert deidentify("TCK-1234 by x@example.com card 4111111111111111", policy) == " by ************* card 4111111111111111"


def test_deny_refuses_without_revealing_values():
    policy = _policy([CC], {"Deny": {}})
    with pytest.raises(SensitiveDataDenied) as exc:
        deidentify("card 4111111111111111", policy)
    assert "4111" not in str(exc.value) and exc.value.identifiers == ["CreditCardNumber"]
    assert deidentify("nothing here", policy) == "nothing here"


@pytest.mark.parametrize("policy, problem", [
    ("{not json", "not JSON"),
    ({"Statement": []}, "Statement"),
    (_policy(["arn:aws:dataprotection::aws:data-identifier/Passport"], MASK), "not supported"),
    (_policy(["Unknown"], MASK), "neither managed nor custom"),
    (_policy(["Bad"], MASK, [{"Name": "Bad", "Regex": "("}]), "invalid Regex"),
    (_policy(["Long"], MASK, [{"Name": "Long", "Regex": "a" * 201}]), "Regex must be"),
    (_policy([CC], {"Deidentify": {"MaskConfig": {"MaskWithCharacter": '"'}}}), "MaskWithCharacter"),
    (_policy([CC], {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "##"}}}), "MaskWithCharacter"),
    (_policy([CC], {"Deidentify": {}}), "Deidentify"),
    (_policy([CC], {}), "exactly one"),
    ({**_policy([CC], MASK), "Version": "2012-10-17"}, "Version"),
])  # fmt: skip
def test_invalid_policies_are_refused_naming_the_problem(policy, problem):
    with pytest.raises(ConfigurationError) as exc:
        DataProtectionPolicy.parse(policy)
    assert problem in str(exc.value)


def test_masked_json_stays_valid_json():
    doc = {"note": 'He said "pay 4111111111111111"', "who": "ann@example.com"}
    text = json.dumps(doc)
    out = deidentify(text, {"Version": "2021-06-01", "Statement": [{"DataIdentifier": [CC, EMAIL], "Operation": MASK}]})
    assert json.loads(out) == {"note": 'He said "pay ################"', "who": "###############"}


# -- masking never breaks the document it masks ------------------------------------------------------
def test_a_masked_or_redacted_number_becomes_a_string_and_the_json_stays_json():
    """A finding that is a JSON number: masked on the structure it becomes a string. (On the
    serialized text, as before, it gave {"bytes":################} or, redacted, {"bytes":}.)"""
    doc = {"bytes": 4539894458086459, "records": 2, "ratio": 0.5, "ok": True, "none": None}
    for operation, masked in ((MASK, "#" * 16), (REDACT, "")):
        policy = DataProtectionPolicy.parse(_policy([CC], operation))
        out = json.loads(json.dumps(policy.apply_json(doc)))
        assert out == {**doc, "bytes": masked}
    with pytest.raises(ValueError):  # what masking the serialized text did
        json.loads(DataProtectionPolicy.parse(_policy([CC], REDACT)).apply(json.dumps(doc)))


def test_keys_are_masked_too_and_never_merge():
    policy = DataProtectionPolicy.parse(_policy([EMAIL], MASK))
    out = policy.apply_json({"ann@example.com": 1, "bob@example.org": 2, "###############": 3, "n": ["cc ann@example.com"]})
    assert out == {"###############": 1, "############### (2)": 2, "############### (3)": 3, "n": ["cc ###############"]}


def test_a_json_key_is_the_keyword_of_its_value():
    """As SNS scans the serialized message, the key stands next to its value: {"phone": "..."}."""
    policy = DataProtectionPolicy.parse(_policy([f"{PREFIX}PhoneNumber-GB", f"{PREFIX}Ssn-US"], MASK))
    out = policy.apply_json({"phone": "020 7946 0958", "ssn": "123-45-6789", "ref": "020 7946 0958", "nested": {"tel": ["020 7946 0958"]}})
    assert out == {"phone": "#" * 13, "ssn": "#" * 11, "ref": "020 7946 0958", "nested": {"tel": ["#" * 13]}}


def test_html_is_masked_in_its_text_never_its_markup():
    policy = DataProtectionPolicy.parse({"Version": "2021-06-01",
        "Configuration": {"CustomDataIdentifier": [{"Name": "Tag", "Regex": "td|style"}]},
        "Statement": [{"DataIdentifier": [EMAIL, "Tag"], "Operation": {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "<"}}}}]})  # fmt: skip
    html = "<table style='x'><tr><td>o&#x27;brien@example.com &amp; td</td></tr></table><!-- td -->"
    assert policy.apply_html(html) == ("<table style='x'><tr><td>" + "&lt;" * 19 + " &amp; &lt;&lt;</td></tr></table><!-- << -->")


def test_html_attribute_values_and_comments_are_masked_too():
    """A link or a tooltip is as readable as the text: href="mailto:ann@example.com" published the
    address unmasked. Names stay; a masked value is re-escaped in its own quotes."""
    policy = DataProtectionPolicy.parse(_policy([EMAIL], MASK))
    html = (
        "<a href=\"mailto:ann@example.com?s=a&amp;b\" title='bob@example.org' class=x data-u=cy@example.net>"
        "ann@example.com</a><!-- dan@example.com --><img alt='' src=\"cid:chart\">"
    )
    assert policy.apply_html(html) == (
        '<a href="mailto:'
        + "#" * 15
        + "?s=a&amp;b\" title='"
        + "#" * 15
        + "' class=x data-u=\""
        + "#" * 14
        + '">'
        + "#" * 15
        + "</a><!-- "
        + "#" * 15
        + " --><img alt='' src=\"cid:chart\">"
    )


def test_deidentify_payload_keeps_each_kind_of_body_whole():
    policy = DataProtectionPolicy.parse(_policy([CC, EMAIL], MASK))
    assert json.loads(deidentify_payload(b'{"card": 4111111111111111, "to": "a@example.com"}', policy)) == {
        "card": "#" * 16, "to": "#" * 13}  # fmt: skip
    assert deidentify_payload(b"pay 4111111111111111 now", policy) == b"pay ################ now"
    untouched = b'{ "spacing":  "kept when nothing is found" }'
    assert deidentify_payload(untouched, policy) is untouched
    with pytest.raises(NotDeidentifiable):
        deidentify_payload(b"\xff\xfe\x00binary", policy)
    with pytest.raises(SensitiveDataDenied):
        deidentify_payload(b'{"card": "4111111111111111"}', DataProtectionPolicy.parse(_policy([CC], {"Deny": {}})))


def test_a_hostile_or_unusual_json_body_is_never_a_crash_and_json_stays_json():
    """Before: a deeply nested body raised RecursionError out of the masking (one message crashed the
    whole replay instead of being refused by its id), and 1e400 — a JSON number — was written back
    as Infinity, which is not JSON (RFC 8259 section 6: no Infinity or NaN)."""
    policy = DataProtectionPolicy.parse(_policy([CC, EMAIL], MASK))
    for deep in (b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000 + b'"x@example.com"' + b"}" * 5000):
        with pytest.raises(NotDeidentifiable, match="nested too deeply"):
            deidentify_payload(deep, policy)
    out = deidentify_payload(b'{"big": 1e400, "to": "ann@example.com"}', policy)
    assert out == b'{"big": 1e400, "to": "###############"}' and json.loads(out)["big"] == float("inf")
    assert b"NaN" in deidentify_payload(b'{"n": NaN, "to": "ann@example.com"}', policy)  # as it came, masked as text
    # JSON in a string, an escaped "@", an e-mail as a key, a BOM: found, and still JSON
    nested = json.dumps({"payload": json.dumps({"email": "ann@example.com"})}).encode()
    assert "ann@example.com" not in json.loads(json.loads(deidentify_payload(nested, policy))["payload"])["email"]
    assert json.loads(deidentify_payload(b'{"to": "ann\\u0040example.com"}', policy)) == {"to": "#" * 15}
    assert json.loads(deidentify_payload(b'{"ann@example.com": 1}', policy)) == {"#" * 15: 1}
    assert b"ann@example.com" not in deidentify_payload(b'\xef\xbb\xbf{"to": "ann@example.com"}', policy)


def test_numbers_beside_a_masked_value_reach_the_consumer_as_the_producer_wrote_them():
    """Before: the body went through Python floats, so an amount next to a masked e-mail address
    changed (12345678901234567.89 -> 1.2345678901234568e+16, 0.1000000000000000055511151231257827
    -> 0.1) and 1E2 became 100.0 — valid JSON, wrong data. RFC 8259 section 6 leaves a number's
    precision to the implementations: a masking step must not reduce it."""
    policy = DataProtectionPolicy.parse(_policy([EMAIL], MASK))
    numbers = '"amount":12345678901234567.89,"rate":0.1000000000000000055511151231257827,"n":1.10,"e":1E2,"z":-0,"big":123456789012345678901234567890'
    out = deidentify_payload(('{"to":"ann@example.com",' + numbers + ',"list":[2.50,-0.0,3e-7]}').encode(), policy)
    assert out.decode() == '{"to":"###############",' + numbers + ',"list":[2.50,-0.0,3e-7]}'
    # a forged placeholder in the payload stays the string it is
    forged = b'{"to":"ann@example.com","s":"\\u00000:0\\u0000","n":7.0}'
    assert json.loads(deidentify_payload(forged, policy)) == {"to": "#" * 15, "s": "\x000:0\x00", "n": 7.0}
    # a number that is itself sensitive is still masked (as a string), as before
    card = DataProtectionPolicy.parse(_policy([CC], MASK))
    assert deidentify_payload(b'{"card":4111111111111111,"amount":10.00}', card) == b'{"card":"################","amount":10.00}'


# -- more managed identifiers: matches and near misses ----------------------------------------------
PREFIX = "arn:aws:dataprotection::aws:data-identifier/"


def _finds(identifier: str, text: str) -> list[str]:
    """What ``identifier`` finds in ``text`` (masked with a character the texts do not hold)."""
    policy = DataProtectionPolicy.parse(_policy([PREFIX + identifier], {"Deidentify": {"MaskConfig": {"MaskWithCharacter": "¤"}}}))
    return [text[m.start() : m.end()] for m in re.finditer("¤+", policy.apply(text))]


@pytest.mark.parametrize(("text", "found"), [
    ("from 192.168.0.1.", ["192.168.0.1"]),
    ("ip 2001:db8::8a2e:370:7334 ok", ["2001:db8::8a2e:370:7334"]),
    ("loopback ::1 and ::ffff:10.0.0.1", ["::1", "::ffff:10.0.0.1"]),
    ("256.1.1.1", []), ("version 1.2.3.4.5", []), ("10.0.0", []), ("at 10:30:45", []),
    ("mac 00:1a:2b:3c:4d:5e", []), ("std::vector", []),
])  # fmt: skip
def test_ip_addresses(text, found):
    """IpAddress: no keyword, any address (https://docs.aws.amazon.com/sns/latest/dg/sns-message-data-protection-sensitive-data-types-devices.html)."""
    assert _finds("IpAddress", text) == found


@pytest.mark.parametrize(("identifier", "text", "found"), [
    # with the country code no keyword is needed; without it, a keyword must be near (AWS, PhoneNumber)
    ("PhoneNumber-US", "call +1 206 555 0100", ["+1 206 555 0100"]),
    ("PhoneNumber-US", "phone: (206) 555-0100, fax 1-206-555-0101", ["(206) 555-0100", "1-206-555-0101"]),
    ("PhoneNumber-US", "order 2065550100", []),  # no keyword, no country code
    ("PhoneNumber-US", "+1 206 155 0100", []),  # exchange 1xx: not a NANP number
    ("PhoneNumber-US", "+1 106 555 0100", []),  # area code 1xx
    ("PhoneNumber-GB", "+44 (0)20 7946 0958 or tel 07700 900123", ["+44 (0)20 7946 0958", "07700 900123"]),
    ("PhoneNumber-GB", "+44 20 7946 09", []),  # too short
    ("PhoneNumber-GB", "ref 020 7946 0958", []),
    ("PhoneNumber-FR", "+33 1 23 45 67 89; mobile 06 12 34 56 78", ["+33 1 23 45 67 89", "06 12 34 56 78"]),
    ("PhoneNumber-FR", "+33 1 23 45 67", []),
    ("PhoneNumber-DE", "+49 30 12345678, telephone 030 12345678", ["+49 30 12345678", "030 12345678"]),
    ("PhoneNumber-ES", "+34 612 345 678", ["+34 612 345 678"]),
    ("PhoneNumber-ES", "+34 512 345 678", []),  # Spanish numbers start with 6-9
    ("PhoneNumber-IT", "+39 06 1234 5678 / +39 312 345 6789", ["+39 06 1234 5678", "+39 312 345 6789"]),
    ("PhoneNumber-BR", "+55 11 91234-5678; celular (21) 98765-4321", ["+55 11 91234-5678", "(21) 98765-4321"]),
    ("PhoneNumber-GB", "phone 020 7946 0958 12:00", []),  # part of a longer run of digits: not taken apart
    ("PhoneNumber-US", "date 2024-05-01", []),
])  # fmt: skip
def test_phone_numbers(identifier, text, found):
    """https://docs.aws.amazon.com/sns/latest/dg/sns-message-data-protection-sensitive-data-types-pii.html"""
    assert _finds(identifier, text) == found


@pytest.mark.parametrize(("text", "found"), [
    ("ssn 123-45-6789", ["123-45-6789"]), ("SSN: 123 45 6789", ["123 45 6789"]), ("ss# 123456789", ["123456789"]),
    ("social security number 078-05-1120", ["078-05-1120"]),
    ("zip 123-45-6789", []),  # no keyword
    ("ssn 000-45-6789", []), ("ssn 666-45-6789", []), ("ssn 923-45-6789", []),  # never issued areas
    ("ssn 123-00-6789", []), ("ssn 123-45-0000", []),  # never issued group / serial
    ("ssn 123-45 6789", []), ("ssn 1234-56-789", []),
])  # fmt: skip
def test_us_social_security_numbers(text, found):
    """Ssn-US: keyword required (social security, ss#, ssn), as AWS documents; SSA's never-issued numbers excluded."""
    assert _finds("Ssn-US", text) == found


@pytest.mark.parametrize(("identifier", "text", "found"), [
    ("BankAccountNumber-DE", "IBAN DE89 3704 0044 0532 0130 00", ["DE89 3704 0044 0532 0130 00"]),
    ("BankAccountNumber-DE", "kontonummer: DE89370400440532013000 EUR", ["DE89370400440532013000"]),
    ("BankAccountNumber-DE", "IBAN DE89 3704 0044 0532 0130 01", []),  # mod-97 check fails
    ("BankAccountNumber-DE", "DE89 3704 0044 0532 0130 00", []),  # no keyword
    ("BankAccountNumber-DE", "IBAN DE89 3704 0044 0532 0130", []),  # too short for Germany
    ("BankAccountNumber-GB", "iban GB82 WEST 1234 5698 7654 32", ["GB82 WEST 1234 5698 7654 32"]),
    ("BankAccountNumber-GB", "iban GB82 1234 1234 5698 7654 32", []),  # a GB BBAN starts with 4 letters
    ("BankAccountNumber-FR", "account number FR14 2004 1010 0505 0001 3M02 606", ["FR14 2004 1010 0505 0001 3M02 606"]),
    ("BankAccountNumber-ES", "IBAN ES91 2100 0418 4502 0005 1332", ["ES91 2100 0418 4502 0005 1332"]),
    ("BankAccountNumber-IT", "IBAN IT60 X054 2811 1010 0000 0123 456", ["IT60 X054 2811 1010 0000 0123 456"]),
    ("BankAccountNumber-IT", "IBAN DE89 3704 0044 0532 0130 00", []),  # another country's identifier
])  # fmt: skip
def test_ibans(identifier, text, found):
    """BankAccountNumber-XX: IBANs with a keyword (https://docs.aws.amazon.com/sns/latest/dg/sns-message-data-protection-sensitive-data-types-financial.html),
    the country's length and BBAN structure, and the ISO 13616 mod-97 check."""
    assert _finds(identifier, text) == found


def test_iban_check_digits():
    assert iban_valid("DE89370400440532013000") and iban_valid("GB82WEST12345698765432")
    assert not iban_valid("DE88370400440532013000") and not iban_valid("GB82WEST1234569876543!")


def test_keywords_match_as_aws_documents():
    """ "Keywords aren't case sensitive ... a keyword with a space also matches no space, _ or -"."""
    for keyword in ("Social Security", "social_security", "social-security", "socialsecurity", "SSN"):
        assert _finds("Ssn-US", f"{keyword}: 123-45-6789") == ["123-45-6789"], keyword
    assert _finds("Ssn-US", "lessn 123-45-6789") == []  # inside another word
    assert _finds("Ssn-US", "123-45-6789 " + "x" * 60 + " ssn") == []  # too far (KEYWORD_DISTANCE)


def test_a_repeated_json_key_hides_nothing():
    """A parser keeps one value of a repeated key ({"a": "<email>", "a": "x"} parses to {"a": "x"}):
    masking that parse found nothing and published the original text, email included."""
    policy = DataProtectionPolicy.parse(_policy([EMAIL], MASK))
    out = deidentify_payload(b'{"a": "ann@example.com", "a": "x", "b": [{"c": 1, "c": "bob@example.org"}]}', policy)
    assert b"@" not in out
    assert json.loads(out) == {"a": "#" * 15, "a (2)": "x", "b": [{"c": 1, "c (2)": "#" * 15}]}
    assert json.loads(deidentify_payload(b'{"a": "ann@example.com", "a": "x"}', policy)) == {"a": "#" * 15, "a (2)": "x"}
    untouched = b'{"a": 1, "a": 2}'
    assert deidentify_payload(untouched, policy) == untouched


def test_a_lone_surrogate_escape_beside_a_finding_stays_the_escape_it_was():
    """JSON allows a lone surrogate escape (RFC 8259 section 8.2: ``"\\ud800"`` parses, as in
    JavaScript strings). Before: with an e-mail address masked beside it, writing the masked body
    back raised UnicodeEncodeError ('surrogates not allowed') out of the masking, and the replay
    crashed on that one message instead of sending it masked."""
    policy = DataProtectionPolicy.parse(_policy([EMAIL], MASK))
    body = b'{"to": "ann@example.com", "note": "half \\ud83d of an emoji", "\\udfff": ["\\udc00x"], "ok": "\\ud83d\\ude00"}'
    out = deidentify_payload(body, policy)
    assert b"ann@example.com" not in out
    assert json.loads(out) == {"to": "#" * 15, "note": "half \ud83d of an emoji", "\udfff": ["\udc00x"], "ok": "\U0001f600"}
    out.decode("utf-8")  # valid UTF-8: the lone ones written back as escapes, the pair as its character


@pytest.mark.parametrize("body", [
    b'{"ssn": {"primary": "123-45-6789"}}',
    b'{"ssn": [{"value": "123-45-6789"}]}',
    b'{"customer": {"ssn": {"current": {"value": "123-45-6789"}}}}',
    b'{"aws_secret_access_key": {"value": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}',
    b'{"credentials": [{"secret": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}]}',
])  # fmt: skip
def test_a_keyword_key_qualifies_values_nested_below_it(body):
    """SNS looks for a keyword in the message text near the data ("Using managed data identifiers
    in Amazon SNS": https://docs.aws.amazon.com/sns/latest/dg/sns-message-data-protection-managed-data-identifiers.html):
    in ``{"ssn": {"primary": "123-45-6789"}}`` ``ssn`` is 13 characters before the number. Before:
    only the innermost key counted as the value's keyword, so a number or secret key one level
    below its keyword key was published unmasked."""
    policy = DataProtectionPolicy.parse(_policy([SECRET, "arn:aws:dataprotection::aws:data-identifier/Ssn-US"], MASK))
    out = deidentify_payload(body, policy)
    assert b"123-45-6789" not in out and b"wJalrXUtnFEMI" not in out, out
    assert _shape(json.loads(out)) == _shape(json.loads(body))  # the same document, its values masked


def _shape(value):
    """A JSON document with every string value (not key) as ``"s"``: its structure."""
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return "s" if isinstance(value, str) else value
