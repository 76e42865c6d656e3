#!/usr/bin/env python3
"""Reads the pipeline's Kafka topics with an independent client (confluent-kafka) and checks
that every message is the documented JSON (docs/ARCHITECTURE.md, "Topics and payloads").

    kafka-topics-check.py BROKERS [TOPIC_PREFIX] [--expect-send-jobs N]

Reads each topic from the beginning with a fresh consumer group until it has been quiet for a
few seconds, checks each payload's fields and types, prints one summary line per topic as JSON,
and exits 1 on the first malformed message (0 otherwise).
"""
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError

FIELDS = {
    "campaign.jobs": {"campaignId": int, "leadIds": list},
    "campaign.send_jobs": {"send_id": str, "campaign_id": int, "lead_id": int, "to": str, "message": str, "attempt": int},
    "campaign.status_updates": {
        "send_id": str, "campaign_id": int, "lead_id": int, "status": str, "attempt": int,
        "error": (str, type(None)), "timestamp": str,
    },
    "campaign.dlq": {"payload": dict, "reason": str},
}
STATUSES = {"pending", "sending", "sent", "delivered", "read", "failed", "skipped", "uncertain", "cancelled"}


def check(topic, doc):
    """Why `doc` is not a valid payload of `topic`, or None."""
    for field, kind in FIELDS[topic].items():
        if field not in doc:
            return f"missing {field}"
        if not isinstance(doc[field], kind) or isinstance(doc[field], bool):
            return f"{field} is {type(doc[field]).__name__}"
    if topic == "campaign.jobs" and not all(isinstance(i, int) for i in doc["leadIds"]):
        return "leadIds holds a non-integer"
    if topic == "campaign.jobs" and not 0 < len(doc["leadIds"]) <= 1000:
        return f"a chunk of {len(doc['leadIds'])} lead ids"
    if topic == "campaign.status_updates" and doc["status"].lower() not in STATUSES:
        return f"unknown status {doc['status']}"
    if topic == "campaign.dlq":
        return check("campaign.send_jobs", doc["payload"])
    return None


def read_topic(brokers, name, quiet=5.0, limit=120.0):
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"crm-check-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
    })
    consumer.subscribe([name])
    docs, last, start = [], time.monotonic(), time.monotonic()
    try:
        while time.monotonic() - last < quiet and time.monotonic() - start < limit:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise SystemExit(f"{name}: {msg.error()}")
            docs.append((msg.key(), msg.value()))
            last = time.monotonic()
    finally:
        consumer.close()
    return docs


def main():
    args = sys.argv[1:]
    expect = None
    if "--expect-send-jobs" in args:
        i = args.index("--expect-send-jobs")
        expect = int(args[i + 1])
        del args[i:i + 2]
    brokers, prefix = args[0], (args[1] if len(args) > 1 else "")
    failed = False
    for topic in FIELDS:
        docs = read_topic(brokers, prefix + topic)
        keyed = sum(1 for k, _ in docs if k)
        bad = None
        for key, value in docs:
            try:
                doc = json.loads(value)
            except (TypeError, ValueError) as e:
                bad = f"not JSON: {e}"
            else:
                bad = check(topic, doc) if isinstance(doc, dict) else "not an object"
            if bad:
                bad = f"{bad}: {value[:200]!r}"
                break
        if topic == "campaign.send_jobs" and expect is not None and len({json.loads(v)["send_id"] for _, v in docs}) < expect:
            bad = bad or f"expected send jobs for {expect} leads, read {len(docs)} messages"
        print(json.dumps({"topic": topic, "messages": len(docs), "keyed": keyed, "ok": bad is None, "problem": bad}))
        failed = failed or bad is not None
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
