"""``cds feedback report``: how often each card family's, each rule's and each card's advice was accepted or
overridden, and why: so informaticists can see which cards people dismiss and for which reasons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, select

from cds.store.models import CardAudit, CardRule, CardState, FeedbackRecord

UNKNOWN_FAMILY = "(card family not recorded)"


def _reason_label(row: Any, displays: Mapping[tuple[str, str, str], str] | None = None, family: str = "") -> str:
    if row.override_code:
        # A client may send only system and code (the CDS Hooks sandbox does): the card's own display then.
        display = row.override_display or (displays or {}).get((family, row.override_system, row.override_code))
        label = display or row.override_code
        return f"{label} ({row.override_system}|{row.override_code})" if display else label
    return "(comment only)"


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def feedback_report(
    engine: Engine, card_limit: int = 50, reason_displays: Mapping[tuple[str, str, str], str] | None = None
) -> dict[str, Any]:
    """Per card family, per override reason, per rule and per card: cards issued, feedback accepted or
    overridden (with rates), override reasons and comments. ``reason_displays`` names the reasons a
    client sent without a display, from the cards' declared override reasons."""
    with engine.connect() as connection:
        cards = {row.card_uuid: row for row in connection.execute(select(CardAudit))}
        family_of = {
            row.card_uuid: row.card_family
            for row in connection.execute(select(CardState.card_uuid, CardState.card_family))
        }
        rules_of: dict[str, list[str]] = {}
        for row in connection.execute(select(CardRule.card_uuid, CardRule.rule_id)):
            rules_of.setdefault(row.card_uuid, []).append(row.rule_id)
        feedback = list(connection.execute(select(FeedbackRecord).order_by(FeedbackRecord.id)))

    per_card: dict[str, dict[str, Any]] = {}
    for record in feedback:
        card = cards.get(record.card_uuid)
        entry = per_card.setdefault(
            record.card_uuid,
            {
                "card": record.card_uuid,
                "service": card.service_id if card else None,
                "rules": sorted(rules_of.get(record.card_uuid, [])),
                "accepted": 0,
                "overridden": 0,
                "reasons": Counter(),
                "comments": [],
            },
        )
        entry[record.outcome] += 1
        if record.outcome == "overridden":
            entry["reasons"][_reason_label(record, reason_displays, family_of.get(record.card_uuid, ""))] += 1
            if record.override_comment:
                entry["comments"].append(record.override_comment)

    per_family: dict[str, dict[str, Any]] = {}
    for card_uuid in cards:
        name = family_of.get(card_uuid, UNKNOWN_FAMILY)
        entry = per_family.setdefault(
            name, {"family": name, "cards": 0, "accepted": 0, "overridden": 0, "reasons": Counter()}
        )
        entry["cards"] += 1
        card_feedback = per_card.get(card_uuid)
        if card_feedback:
            entry["accepted"] += card_feedback["accepted"]
            entry["overridden"] += card_feedback["overridden"]
            entry["reasons"].update(card_feedback["reasons"])
    for entry in per_family.values():
        rated = entry["accepted"] + entry["overridden"]
        entry["accept_rate"] = _rate(entry["accepted"], rated)
        entry["override_rate"] = _rate(entry["overridden"], rated)
    per_reason: dict[str, dict[str, Any]] = {}
    for entry in per_family.values():
        for reason, count in entry["reasons"].items():
            item = per_reason.setdefault(reason, {"reason": reason, "overrides": 0, "families": Counter()})
            item["overrides"] += count
            item["families"][entry["family"]] += count

    per_rule: dict[str, dict[str, Any]] = {}
    for card_uuid, rule_ids in rules_of.items():
        for rule_id in rule_ids:
            entry = per_rule.setdefault(
                rule_id, {"rule": rule_id, "cards": 0, "accepted": 0, "overridden": 0, "reasons": Counter()}
            )
            entry["cards"] += 1
            card_feedback = per_card.get(card_uuid)
            if card_feedback:
                entry["accepted"] += card_feedback["accepted"]
                entry["overridden"] += card_feedback["overridden"]
                entry["reasons"].update(card_feedback["reasons"])

    def plain(entry: dict[str, Any]) -> dict[str, Any]:
        return {**entry, "reasons": dict(entry["reasons"].most_common())}

    families = sorted(per_family.values(), key=lambda e: (-(e["overridden"]), -e["cards"], e["family"]))
    reasons = [
        {**r, "families": dict(r["families"].most_common())}
        for r in sorted(per_reason.values(), key=lambda r: (-r["overrides"], r["reason"]))
    ]
    rules = sorted(per_rule.values(), key=lambda e: (-(e["accepted"] + e["overridden"]), e["rule"]))
    card_rows = sorted(per_card.values(), key=lambda e: (-(e["accepted"] + e["overridden"]), e["card"]))
    return {
        "cards_issued": len(cards),
        "feedback_items": len(feedback),
        "families": [plain(e) for e in families],
        "reasons": reasons,
        "rules": [plain(e) for e in rules],
        "cards": [plain(e) for e in card_rows[:card_limit]],
    }


def render_report(report: dict[str, Any]) -> str:
    lines = [f"Cards issued: {report['cards_issued']}   feedback items: {report['feedback_items']}", ""]
    lines.append("Per card family (most overridden first)")
    if not report["families"]:
        lines.append("  (no audited cards yet)")
    for entry in report["families"]:
        rated = entry["accepted"] + entry["overridden"]
        rates = (
            f"{entry['accept_rate']:.0%} accepted, {entry['override_rate']:.0%} overridden" if rated else "no feedback"
        )
        lines.append(
            f"  {entry['family']}: {entry['cards']} card(s), {entry['accepted']} accepted, "
            f"{entry['overridden']} overridden ({rates})"
        )
        for reason, count in entry["reasons"].items():
            lines.append(f"      override: {reason} x{count} ({count / entry['overridden']:.0%} of its overrides)")
    lines.extend(["", "Per override reason"])
    if not report["reasons"]:
        lines.append("  (no overrides yet)")
    for item in report["reasons"]:
        where = ", ".join(f"{family} x{count}" for family, count in item["families"].items())
        lines.append(f"  {item['reason']}: {item['overrides']} override(s): {where}")
    lines.extend(["", "Per rule"])
    if not report["rules"]:
        lines.append("  (no audited cards yet)")
    for entry in report["rules"]:
        rated = entry["accepted"] + entry["overridden"]
        share = f"{entry['accepted'] / rated:.0%} accepted" if rated else "no feedback"
        lines.append(
            f"  {entry['rule']}: {entry['cards']} card(s), {entry['accepted']} accepted, "
            f"{entry['overridden']} overridden ({share})"
        )
        for reason, count in entry["reasons"].items():
            lines.append(f"      override: {reason} x{count}")
    lines.extend(["", "Per card (with feedback)"])
    if not report["cards"]:
        lines.append("  (no feedback yet)")
    for entry in report["cards"]:
        lines.append(
            f"  {entry['card']} [{entry['service']}] rules: {', '.join(entry['rules']) or '-'}: "
            f"{entry['accepted']} accepted, {entry['overridden']} overridden"
        )
        for reason, count in entry["reasons"].items():
            lines.append(f"      override: {reason} x{count}")
        for comment in entry["comments"]:
            lines.append(f"      comment: {comment}")
    return "\n".join(lines)
