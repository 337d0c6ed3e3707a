"""The shipped alert automations (deployments/automations/alerts.yaml), installed against a webhook:
one for a run that leaves more than N units for review, one for a run whose budget ran out."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect.blocks.webhook import Webhook
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import AutomationCore

WEBHOOK_BLOCK = "slmflow-alerts"
RANK = "slmflow.review.rank"


def automations_file() -> Path:
    return Path(str(resources.files("deployments"))) / "automations" / "alerts.yaml"


def alert_automations(block_id: UUID, max_review: int) -> list[dict[str, Any]]:
    """The file's automations aimed at the webhook block, the backlog one at `max_review`."""
    data = yaml.safe_load(automations_file().read_text(encoding="utf-8"))
    automations = data["automations"]
    for automation in automations:
        for action in automation["actions"]:
            action["block_document_id"] = str(block_id)
        match = automation["trigger"].get("match", {})
        if RANK in match:
            match[RANK] = str(max_review + 1)
            automation["description"] = f"A job run left more than {max_review} units for review."
    return automations


def install_alerts(url: str, max_review: int) -> list[UUID]:
    """Save the webhook block (POST JSON to `url`) and (re)create the automations. Idempotent."""
    block = Webhook(method="POST", url=url, headers={"Content-Type": "application/json"})
    block_id: UUID = block.save(WEBHOOK_BLOCK, overwrite=True)  # type: ignore[assignment]
    created = []
    with get_client(sync_client=True) as client:
        for raw in alert_automations(block_id, max_review):
            for old in client.read_automations_by_name(raw["name"]):
                client.delete_automation(old.id)
            created.append(client.create_automation(AutomationCore.model_validate(raw)))
    return created
