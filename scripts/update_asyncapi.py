"""Regenerates docs/asyncapi.json, the Socket.IO contract, from the typed event model
(`make readme` runs it too); a test keeps them equal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wipsvc.domain.events import EVENT_NAME, SCHEDULED_EVENT_NAME, JobProgress, JobScheduled

ASYNCAPI = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"


def document() -> dict[str, Any]:
    schema = JobProgress.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    scheduled = JobScheduled.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions |= scheduled.pop("$defs", {})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "wipsvc live progress (Socket.IO)",
            "version": "1",
            "description": (
                "Connect with Socket.IO (auth `{api_key}` when keys exist). The server sends "
                f"`{EVENT_NAME}` for the jobs of the key's collections. Emit `subscribe` with "
                "`{job_id, after_seq}` to get the events missed since `after_seq` (every event is "
                "stored before it is sent; `seq` is gapless per job). A job given a `run_at` is "
                f"announced by `{SCHEDULED_EVENT_NAME}` (live only, not stored); its "
                f"`{EVENT_NAME}` events start once it is queued."
            ),
        },
        "channels": {
            EVENT_NAME: {
                "address": EVENT_NAME,
                "messages": {"JobProgress": {"$ref": "#/components/messages/JobProgress"}},
            },
            SCHEDULED_EVENT_NAME: {
                "address": SCHEDULED_EVENT_NAME,
                "messages": {"JobScheduled": {"$ref": "#/components/messages/JobScheduled"}},
            },
        },
        "operations": {
            "receiveProgress": {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{EVENT_NAME}"},
                "messages": [{"$ref": f"#/channels/{EVENT_NAME}/messages/JobProgress"}],
            },
            "receiveScheduled": {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{SCHEDULED_EVENT_NAME}"},
                "messages": [{"$ref": f"#/channels/{SCHEDULED_EVENT_NAME}/messages/JobScheduled"}],
            },
        },
        "components": {
            "messages": {
                "JobProgress": {"name": EVENT_NAME, "payload": {"$ref": "#/components/schemas/JobProgress"}},
                "JobScheduled": {
                    "name": SCHEDULED_EVENT_NAME,
                    "payload": {"$ref": "#/components/schemas/JobScheduled"},
                },
            },
            "schemas": {**definitions, "JobProgress": schema, "JobScheduled": scheduled},
        },
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    ASYNCAPI.write_text(rendered())
    return 0


if __name__ == "__main__":
    sys.exit(main())
