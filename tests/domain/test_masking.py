"""Masking with SNS data-protection-policy JSON (pure; the seed's expense-report example)."""

from __future__ import annotations

import json

import pytest

from airflow_reliable_messaging.domain.masking import (
    AWS_ACCESS_KEY_ID,
    DataProtectionPolicy,
    SensitiveDataDenied,
    deidentify,
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
