"""Generate docs/reference.md from the provider's docstrings and signatures.

    .venvs/af-3.3.1/bin/python scripts/gen_reference.py          # rewrite docs/reference.md
    .venvs/af-3.3.1/bin/python scripts/gen_reference.py --check  # exit 1 when it is out of date

Every class of the modules the provider registers (operators, sensors, hooks, triggers,
notifiers): summary, parameters (default, templated or not, the docstring's ``:param`` text, or
the shared text in ``COMMON`` for connection-style parameters) and its how-to page.
tests/integration/docs/test_reference.py runs ``--check`` and fails on undocumented operator parameters.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "docs" / "reference.md"
PACKAGE = "airflow_reliable_messaging"
KINDS = ("operators", "sensors", "hooks", "triggers")

# Parameters with the same meaning everywhere: documented once here.
COMMON = {
    "aws_conn_id": "Airflow connection of type `aws` (the Amazon provider's); `None` uses the default boto3 credential chain (the MWAA execution role).",
    "region_name": "AWS region; default: the connection's region, else the environment's.",
    "verify": "TLS verification for AWS calls (botocore `verify`).",
    "botocore_config": "Extra botocore client configuration (dict).",
    "snowflake_conn_id": "Airflow connection of type `snowflake`.",
    "smtp_conn_id": "Airflow connection of type `smtp`.",
    "kms_key_id": "KMS key for SSE-KMS on the S3 objects written; empty: SSE-S3 (AES256).",
    "poke_interval": "Seconds between checks when not deferred.",
    "timeout": "Seconds before the sensor gives up.",
    "deferrable": "Wait in the triggerer (frees the worker slot) instead of poking.",
    "poll_interval": "Seconds between status checks while waiting.",
}


def _param_docs(cls: type) -> dict[str, str]:
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith(PACKAGE):
            continue
        init = klass.__dict__.get("__init__")
        text = "\n\n".join(filter(None, (inspect.getdoc(klass), inspect.getdoc(init) if init else None)))
        for m in re.finditer(r":param\s+([^:]+):(.*?)(?=\n\s*:param|\n\s*\n|\Z)", text, re.S):
            desc = " ".join(m.group(2).split())
            for name in re.split(r"\s*/\s*|\s*,\s*|\s+and\s+", m.group(1).strip()):
                if name:
                    docs[name] = desc
    return docs


def parameters(cls: type) -> list[inspect.Parameter]:
    """Keyword parameters the package's own ``__init__`` methods declare (not Airflow's)."""
    seen: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        if klass.__module__.startswith(PACKAGE) and "__init__" in klass.__dict__:
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                    seen.setdefault(p.name, p)
    return list(seen.values())


def undocumented(cls: type) -> list[str]:
    docs = _param_docs(cls)
    return [p.name for p in parameters(cls) if p.name not in docs and p.name not in COMMON]


def classes() -> list[tuple[str, str, type]]:
    """(kind, integration, class) for every public class defined in a registered module."""
    from airflow_reliable_messaging.get_provider_info import get_provider_info

    info = get_provider_info()
    out = []
    groups = [(k, g["integration-name"], g["python-modules"]) for k in KINDS for g in info.get(k, [])]
    groups.append(("notifications", "Run monitoring", sorted({n.rpartition(".")[0] for n in info.get("notifications", [])})))
    for kind, integration, modules in groups:
        for name in modules:
            module = importlib.import_module(name)
            for cname, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == name and not cname.startswith("_") and _is_component(cls):
                    out.append((kind, integration, cls))
    return out


def _is_component(cls: type) -> bool:
    names = {b.__name__ for b in cls.__mro__}
    return bool(names & {"BaseOperator", "BaseSensorOperator", "BaseHook", "BaseTrigger", "BaseNotifier"})


def _default(p: inspect.Parameter) -> str:
    if p.default is inspect.Parameter.empty:
        return "required"
    text = repr(p.default)
    return f"`{text if len(text) < 40 else text[:37] + '...'}`"


def render() -> str:
    from airflow_reliable_messaging.get_provider_info import get_provider_info

    guides = {i["integration-name"]: i.get("how-to-guide", []) for i in get_provider_info()["integrations"]}
    lines = [
        "# Reference: operators, sensors, hooks, triggers, notifiers",
        "",
        "Generated from the docstrings by `scripts/gen_reference.py` (do not edit by hand; the test",
        "suite fails when this page is out of date or an operator parameter has no description).",
        "XCom results, IAM actions and failure modes: [index](index.md#operators-at-a-glance) and each how-to page.",
        "",
        "Connection-style parameters, the same everywhere:",
        "",
        "| parameter | meaning |",
        "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in COMMON.items()],
        "",
    ]
    for kind, integration, cls in sorted(classes(), key=lambda t: (KINDS + ("notifications",)).index(t[0]) * 1000 + 0):
        doc = inspect.getdoc(cls) or ""
        summary = " ".join(doc.split("\n\n")[0].split())
        templated = set(getattr(cls, "template_fields", ()) or ())
        docs = _param_docs(cls)
        lines += [f"## `{cls.__name__}`", "", f"{kind[:-1]} · `{cls.__module__}` · {integration}", "", summary, ""]
        for guide in guides.get(integration, []):
            lines += [f"How-to: [{Path(guide).name}]({Path(guide).relative_to('docs').as_posix()})", ""]
        params = parameters(cls)
        if params:
            lines += ["| parameter | default | templated | description |", "|---|---|---|---|"]
            for p in params:
                desc = docs.get(p.name) or COMMON.get(p.name) or "**undocumented**"
                lines.append(f"| `{p.name}` | {_default(p)} | {'yes' if p.name in templated else ''} | {desc.replace('|', '\\|')} |")
            lines.append("")
        links = [link.name for link in getattr(cls, "operator_extra_links", ()) or ()]
        if links:
            lines += [f"Console links: {', '.join(links)}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is out of date: run scripts/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
