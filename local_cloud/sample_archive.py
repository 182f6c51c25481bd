"""A realistic audit archive in the seed pipeline's layout, for demos and tests.

Objects are written as the seed's serverless pipeline writes them: the raw payload bytes at
``<prefix>/YYYY/MM/DD/HH/MM/SS/<messageID>`` (producer time), no manifest; most objects carry
``source-system`` / ``message-type`` user metadata, some (legacy producers) none. Sizes
range from 1 KB to 6 MB; payloads are JSON documents (decision traces, claims, payments) and
binary images; a few JSON ones are malformed on purpose. Uses only boto3 and the standard library.
"""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

PRODUCERS = {
    "claims-service": ["claimSubmitted", "claimUpdated"],
    "payments-gateway": ["paymentAuthorized", "paymentSettled"],
    "kyc-scanner": ["imageB64"],
    "underwriting-ai": ["decisionTrace"],
}
KB, MB = 1024, 1024 * 1024


@dataclass(frozen=True)
class SampleRecord:
    message_id: str
    key: str
    size: int
    sha256: str
    event_time: datetime
    source_system: str | None  # None where the object carries no metadata
    message_type: str | None
    kind: str  # "json", "binary" or "malformed-json"


def _json_payload(rng: random.Random, source: str, message_type: str, when: datetime, size: int) -> bytes:
    doc = {
        "sourceSystemID": source,
        "messageType": message_type,
        "dateTime": when.strftime("%Y-%m-%d %H:%M:%S.%f"),
        "transactionId": str(uuid.UUID(int=rng.getrandbits(128))),
        "amount": round(rng.uniform(1, 50_000), 2),
        "features": [],
    }
    body = json.dumps(doc).encode()
    # Pad with realistic-looking model features up to the wanted size.
    features, total = [], len(body)
    while total < size:
        feature = f"f{len(features)}:{rng.random():.12f}"
        features.append(feature)
        total += len(feature) + 4  # quotes, comma and space in the JSON text
    doc["features"] = features
    return json.dumps(doc).encode()


def _binary_payload(rng: random.Random, size: int) -> bytes:
    header = b"\x89PNG\r\n\x1a\n"
    return header + rng.randbytes(max(size - len(header), 0))


def seed_sample_archive(
    s3,
    bucket: str,
    prefix: str,
    start: datetime,
    end: datetime,
    count: int = 300,
    large: int = 3,
    malformed: int = 4,
    seed: int = 7,
    producers: dict[str, list[str]] | None = None,
) -> list[SampleRecord]:
    """Write ``count`` records with event times spread over [start, end); return what was written.

    ``large`` records are 6 MB (binary or JSON, alternating), ``malformed`` JSON ones are truncated.
    ``producers``: source system → message types (default :data:`PRODUCERS`).
    """
    rng = random.Random(seed)
    producers = producers or PRODUCERS
    span = (end - start).total_seconds()
    records = []
    for i in range(count):
        source = rng.choice(sorted(producers))
        message_type = rng.choice(producers[source])
        when = start + timedelta(seconds=rng.uniform(0, span - 1))
        when = when.replace(microsecond=rng.randrange(1_000_000))
        if i < large:
            size = 6 * MB
        elif rng.random() < 0.05:
            size = rng.randrange(256 * KB, 2 * MB)
        else:
            size = rng.randrange(1 * KB, 64 * KB)
        if i < large and i % 2 == 1:  # large JSON decision traces (model inputs), as in the seed post
            source, message_type = "underwriting-ai", "decisionTrace"
        binary = message_type == "imageB64" or (i < large and i % 2 == 0)
        if binary:
            body, kind = _binary_payload(rng, size), "binary"
        else:
            body, kind = _json_payload(rng, source, message_type, when, size), "json"
        if large <= i < large + malformed:
            body, kind = _json_payload(rng, source, message_type, when, 2 * KB)[:-17], "malformed-json"
        message_id = str(uuid.UUID(int=rng.getrandbits(128)))
        key = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        key += f"{when:%Y/%m/%d/%H/%M/%S}/{message_id}"
        # Most producers tag their objects; some legacy ones write bare payloads, as the seed does.
        metadata = {} if i % 5 == 4 else {"source-system": source, "message-type": message_type}
        s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata, ServerSideEncryption="AES256")
        records.append(
            SampleRecord(
                message_id,
                key,
                len(body),
                hashlib.sha256(body).hexdigest(),
                when,
                metadata.get("source-system"),
                metadata.get("message-type"),
                kind,
            )  # fmt: skip
        )
    return records
