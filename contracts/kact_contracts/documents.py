"""The checked-in documents generated from the models: JSON Schemas, AsyncAPI, the JetStream settings.

`python -m kact_contracts.documents` rewrites them; tests/contract fails when they drift from the code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec

from kact_contracts.bus import ConsumerSettings, StreamSettings
from kact_contracts.envelope import SCHEMA_BASE, CloudEvent, FeedItem, schema_uri
from kact_contracts.events import NOTICES, PUBLIC_EVENTS, PublicEvent

CONTRACTS_DIR = Path(__file__).resolve().parent.parent
ASYNCAPI_VERSION = "1.0.0"


def event_schema(cls: type[PublicEvent]) -> dict[str, Any]:
    """One event's JSON Schema (draft 2020-12): the whole envelope, with `type` fixed and `data` typed."""
    (_, data_ref), components = msgspec.json.schema_components((CloudEvent, cls))
    defs: dict[str, Any] = components
    envelope = json.loads(json.dumps(defs.pop("CloudEvent")))
    envelope["properties"]["type"] = {"const": cls.type_name()}
    envelope["properties"]["dataschema"] = {"const": schema_uri(cls.type_name())}
    envelope["properties"]["source"] = {"const": cls.SOURCE}
    envelope["properties"]["data"] = data_ref
    envelope["required"] = sorted(set(envelope.get("required", [])) | {"source", "specversion", "datacontenttype"})
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": schema_uri(cls.type_name()),
        **envelope,
        "title": cls.type_name(),
        "description": cls.SUMMARY,
        "$defs": {name: schema for name, schema in defs.items()},
    }


def _refs_to_components(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else _refs_to_components(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_refs_to_components(v) for v in node]
    return node


# The NATS headers the relay sets on every message (nats-py adds `Nats-Expected-Stream`): nothing but the id and
# the trace context.
MESSAGE_HEADERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {"type": "string", "description": "The CloudEvents id: JetStream drops a re-publication."},
        "traceparent": {
            "type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$",
            "description": "W3C Trace Context of the relay's publication (a child of the event's own `traceparent`): "
                           "a consumer continues the trace from here.",
        },
    },
    "required": ["Nats-Msg-Id"],
}


def asyncapi(stream: StreamSettings, consumer: ConsumerSettings) -> dict[str, Any]:
    """An AsyncAPI 3.0 document: one channel and one message per public event."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    _, components = msgspec.json.schema_components(PUBLIC_EVENTS)
    for cls in PUBLIC_EVENTS:
        key = cls.type_name().removeprefix("kact.course.").replace(".", "_")
        messages[key] = {
            "name": cls.type_name(),
            "title": cls.type_name(),
            "summary": cls.SUMMARY,
            "contentType": "application/cloudevents+json",
            "headers": {"$ref": "#/components/schemas/MessageHeaders"},
            "payload": {"$ref": f"schemas/{cls.type_name()}.json"},
        }
        channels[key] = {
            "address": f"{stream.prefix}.course.{{courseId}}.{cls.NAME}.v{cls.VERSION}",
            "parameters": {"courseId": {"description": "The course's id (a UUID)."}},
            "messages": {key: {"$ref": f"#/components/messages/{key}"}},
        }
        operations[f"publish_{key}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{key}"},
            "summary": f"The scheduler's relay publishes {cls.type_name()} (Nats-Msg-Id = the CloudEvents id).",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "kact course events",
            "version": ASYNCAPI_VERSION,
            "description": (
                "Public events of couples' courses, as CloudEvents 1.0 JSON on NATS JetStream. Identifiers and "
                "scheduling facts only: no names, contact details, notes or doses. Per-course order is the "
                "stream order; `streamversion` numbers a course's events."
            ),
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "nats": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "JetStream; `kact up` starts an embedded server on a free port.",
                "bindings": {"x-jetstream": {"stream": stream.document(), "consumer": consumer.document()}},
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages,
                       "schemas": {**_refs_to_components(components), "MessageHeaders": MESSAGE_HEADERS}},
    }


def documents(stream: StreamSettings | None = None, consumer: ConsumerSettings | None = None) -> dict[str, str]:
    """Every generated document by its path under contracts/, as the text that is checked in."""
    stream, consumer = stream or StreamSettings(), consumer or ConsumerSettings()

    def dump(value: Any) -> str:
        return json.dumps(value, indent=2, sort_keys=False) + "\n"

    docs = {f"schemas/{cls.type_name()}.json": dump(event_schema(cls)) for cls in (*PUBLIC_EVENTS, *NOTICES)}
    docs["schemas/feed-item.json"] = dump({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}/feed-item.json",
        **msgspec.json.schema(FeedItem),
    })
    docs["asyncapi.json"] = dump(asyncapi(stream, consumer))
    docs["jetstream.json"] = dump({"stream": stream.document(), "consumer": consumer.document()})
    return docs


def write(root: Path = CONTRACTS_DIR) -> list[Path]:
    written = []
    for relative, text in documents().items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write():
        print(path)
