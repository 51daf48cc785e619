"""Date groups of the conversation list: Pinned, Today, Yesterday, Previous 7 days, Previous 30 days, then months."""
from __future__ import annotations

from datetime import date, datetime, timezone

PINNED, TODAY, YESTERDAY, WEEK, MONTH = "pinned", "today", "yesterday", "week", "month"


def group_of(updated: str, pinned: bool, today: date | None = None) -> str:
    """The group key of a conversation: one of the names above, or "YYYY-MM" for older ones (local time)."""
    if pinned:
        return PINNED
    try:
        moment = datetime.fromisoformat(updated)
    except (TypeError, ValueError):
        return TODAY
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    day = moment.astimezone().date()
    today = today or datetime.now().astimezone().date()
    age = (today - day).days
    if age <= 0:
        return TODAY
    if age == 1:
        return YESTERDAY
    if age <= 7:
        return WEEK
    if age <= 30:
        return MONTH
    return f"{day.year:04d}-{day.month:02d}"


def grouped(rows, today: date | None = None) -> list[tuple[str, list]]:
    """(group key, rows) in list order: pinned first, then by the rows' order (most recent first). A row is
    (id, title, info) with info["updated"] and info["pinned"]."""
    groups: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: not (r[2] if len(r) > 2 else {}).get("pinned")):
        info = row[2] if len(row) > 2 else {}
        groups.setdefault(group_of(info.get("updated", ""), bool(info.get("pinned")), today), []).append(row)
    return list(groups.items())
