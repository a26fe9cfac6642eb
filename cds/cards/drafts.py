"""``update`` suggestions carry the clinician's draft order whole, with the advice merged in.

CDS Hooks 2.0.1 (§Action): an update action's ``resource`` replaces the EHR's
resource "in its entirety and not just the changed fields". A card template
can only describe what it adds, so an update built from the template alone
would erase what the clinician wrote (requester, priority, occurrence, the
existing reason and note...). Here every update action is rebuilt from the
matching ``context.draftOrders`` entry:

* the draft is copied whole, every field kept as written;
* list fields the template proposes (``reasonCode``, ``note``, ...) are
  *appended* to, skipping items already present;
* other fields the template proposes are added only where the draft has none;
  a value the clinician set is never overwritten.

An update whose draft is not in the request (no id, or another id) cannot be
sent whole, so the action is dropped (and a suggestion left with no action
with it); the card itself stays.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

from cds.hooks.models import Card

log = logging.getLogger("cds.cards")


def draft_orders(context: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The draft orders of the request by (resourceType, id)."""
    bundle = context.get("draftOrders")
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if not isinstance(bundle, Mapping):
        return found
    for entry in bundle.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, Mapping) else None
        if (
            isinstance(resource, dict)
            and isinstance(resource.get("resourceType"), str)
            and isinstance(resource.get("id"), str)
        ):
            found[(resource["resourceType"], resource["id"])] = resource
    return found


def merge_into_draft(draft: Mapping[str, Any], proposed: Mapping[str, Any]) -> dict[str, Any]:
    """The draft, whole, with ``proposed`` appended (lists) or added where the draft has nothing."""
    merged = copy.deepcopy(dict(draft))
    for key, value in proposed.items():
        if key not in merged or merged[key] in (None, "", [], {}):
            merged[key] = copy.deepcopy(value)
        elif isinstance(merged[key], list) and isinstance(value, list):
            merged[key] = merged[key] + [copy.deepcopy(item) for item in value if item not in merged[key]]
        # Anything else the clinician set stays as written.
    return merged


def merge_updates(cards: list[Card], context: Mapping[str, Any]) -> list[Card]:
    """``cards`` with every update action's resource rebuilt from its draft order."""
    drafts = draft_orders(context)
    for card in cards:
        if not card.suggestions:
            continue
        kept_suggestions = []
        for suggestion in card.suggestions:
            actions = []
            for action in suggestion.actions or []:
                if action.type != "update" or not isinstance(action.resource, dict):
                    actions.append(action)
                    continue
                key = (action.resource.get("resourceType"), action.resource.get("id"))
                draft = drafts.get(key)  # type: ignore[arg-type]
                if draft is None:
                    log.warning("an update suggestion names no draft order of the request; the action is left out")
                    continue
                action.resource = merge_into_draft(draft, action.resource)
                actions.append(action)
            if actions:
                suggestion.actions = actions
                kept_suggestions.append(suggestion)
        card.suggestions = kept_suggestions or None
        if card.suggestions is None:
            card.selectionBehavior = None
    return cards
