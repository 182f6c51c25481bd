from pathlib import Path

import pytest

from airflow_reliable_messaging import sql_templates
from airflow_reliable_messaging.hooks.snowflake import split_statements

SQL = Path(__file__).resolve().parents[2] / "sql"


def test_every_sql_file_renders_with_the_documented_placeholders():
    values = {"database": "D", "schema": "S", "ns": "D.S", "stage": "ST", "stage_url": "'s3://b/p/'",
              "storage_integration": "I", "storage_role_arn": "'arn:aws:iam::123456789012:role/r'", "role": "R",
              "files": "'a.jsonl'", "file_list": "%(f0)s", "rows": "(%(m0)s, %(f0)s, %(r0)s)"}  # fmt: skip
    files = sorted(p.relative_to(SQL).as_posix() for p in SQL.rglob("*.sql"))
    assert files
    for name in files:
        rendered = sql_templates.render(name, **values)
        assert "{" not in rendered.replace("%(", ""), name


def test_stage_file_lists_are_quoted_and_checked():
    assert sql_templates.stage_file_list(["a/b.jsonl", "c.jsonl"]) == "'a/b.jsonl', 'c.jsonl'"
    for bad in ["../x", "/abs", "a'b", "a b", "a.jsonl\n"]:  # (Python's $ matches before a final newline)
        with pytest.raises(ValueError):
            sql_templates.stage_file_list([bad])
    assert sql_templates.quote_literal("it's") == "'it''s'"


def test_reading_outside_sql_is_refused():
    with pytest.raises(ValueError):
        sql_templates.read("../pyproject.toml")


def test_statement_splitting_ignores_semicolons_in_quotes_and_comments():
    script = "-- a comment; with a semicolon\nSELECT ';' AS X;\nINSERT INTO T VALUES ('a;b');\n\n-- trailing\n"
    assert split_statements(script) == ["SELECT ';' AS X", "INSERT INTO T VALUES ('a;b')"]
