"""Regenerates docs/asyncapi.json, the Socket.IO contract, from the typed event model
(`make readme` runs it too); a test keeps them equal."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from wipsvc.domain.events import EVENT_NAME, JobProgress

ASYNCAPI = Path(__file__).resolve().parents[1] / "docs" / "asyncapi.json"


def document() -> dict[str, Any]:
    schema = JobProgress.model_json_schema(ref_template="#/components/schemas/{model}")
    definitions = schema.pop("$defs", {})
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "wipsvc live progress (Socket.IO)",
            "version": "1",
            "description": (
                "Connect with Socket.IO (auth `{api_key}` when keys exist). The server sends "
                f"`{EVENT_NAME}` for the jobs of the key's collections. Emit `subscribe` with "
                "`{job_id, after_seq}` to get the events missed since `after_seq` (every event is "
                "stored before it is sent; `seq` is gapless per job)."
            ),
        },
        "channels": {
            EVENT_NAME: {
                "address": EVENT_NAME,
                "messages": {"JobProgress": {"$ref": "#/components/messages/JobProgress"}},
            }
        },
        "operations": {
            "receiveProgress": {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{EVENT_NAME}"},
                "messages": [{"$ref": f"#/channels/{EVENT_NAME}/messages/JobProgress"}],
            }
        },
        "components": {
            "messages": {
                "JobProgress": {"name": EVENT_NAME, "payload": {"$ref": "#/components/schemas/JobProgress"}}
            },
            "schemas": {**definitions, "JobProgress": schema},
        },
    }


def rendered() -> str:
    return json.dumps(document(), indent=2, sort_keys=False) + "\n"


def main() -> int:
    ASYNCAPI.write_text(rendered())
    return 0


if __name__ == "__main__":
    sys.exit(main())
