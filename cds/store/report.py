"""``cds feedback report``: how often each rule's and each card's advice was accepted or overridden, and why."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import Engine, select

from cds.store.models import CardAudit, CardRule, FeedbackRecord


def _reason_label(row: Any) -> str:
    if row.override_code:
        label = row.override_display or row.override_code
        return f"{label} ({row.override_system}|{row.override_code})" if row.override_display else label
    return "(comment only)"


def feedback_report(engine: Engine, card_limit: int = 50) -> dict[str, Any]:
    """Per rule and per card: cards issued, feedback accepted/overridden, override reasons and comments."""
    with engine.connect() as connection:
        cards = {row.card_uuid: row for row in connection.execute(select(CardAudit))}
        rules_of: dict[str, list[str]] = {}
        for row in connection.execute(select(CardRule.card_uuid, CardRule.rule_id)):
            rules_of.setdefault(row.card_uuid, []).append(row.rule_id)
        feedback = list(connection.execute(select(FeedbackRecord).order_by(FeedbackRecord.id)))

    per_card: dict[str, dict[str, Any]] = {}
    for row in feedback:
        card = cards.get(row.card_uuid)
        entry = per_card.setdefault(
            row.card_uuid,
            {
                "card": row.card_uuid,
                "service": card.service_id if card else None,
                "rules": sorted(rules_of.get(row.card_uuid, [])),
                "accepted": 0,
                "overridden": 0,
                "reasons": Counter(),
                "comments": [],
            },
        )
        entry[row.outcome] += 1
        if row.outcome == "overridden":
            entry["reasons"][_reason_label(row)] += 1
            if row.override_comment:
                entry["comments"].append(row.override_comment)

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

    rules = sorted(per_rule.values(), key=lambda e: (-(e["accepted"] + e["overridden"]), e["rule"]))
    card_rows = sorted(per_card.values(), key=lambda e: (-(e["accepted"] + e["overridden"]), e["card"]))
    return {
        "cards_issued": len(cards),
        "feedback_items": len(feedback),
        "rules": [plain(e) for e in rules],
        "cards": [plain(e) for e in card_rows[:card_limit]],
    }


def render_report(report: dict[str, Any]) -> str:
    lines = [f"Cards issued: {report['cards_issued']}   feedback items: {report['feedback_items']}", ""]
    lines.append("Per rule")
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
