"""A policy as plain sentences, for reviewers who do not read YAML.

The text is grouped by dataset (what is classified, owned, kept), then by who
may do what, then limits and change control. The same text is stored with each
version and shown by ``datatrail policy explain`` and the UI.
"""

from __future__ import annotations

from datetime import timedelta

from datatrail.governance._document import AccessRule, Condition, Limit, Policy, RetentionRule

__all__ = ["explain_policy"]

_MASK_WORDS = {
    "redact": "redacted",
    "null": "removed (left empty)",
    "hash": "replaced by a salted hash",
    "keep_last_4": "shown only by their last 4 characters",
    "token": "replaced by a stable token",
    "year": "reduced to the year",
}
_ACTION_WORDS = {
    "read": "read",
    "write": "write",
    "export": "export",
    "delete": "delete",
    "admin": "administer",
}


def _span(span: timedelta) -> str:
    days = span.days
    if span.seconds or span.microseconds:
        hours = span.total_seconds() / 3600
        return f"{hours:g} hour" + ("s" if hours != 1 else "")
    if days and days % 365 == 0:
        years = days // 365
        return f"{years} year" + ("s" if years != 1 else "")
    if days and days % 7 == 0 and days < 365:
        weeks = days // 7
        return f"{weeks} week" + ("s" if weeks != 1 else "")
    return f"{days} day" + ("s" if days != 1 else "")


def _join(items: list[str], word: str = "and") -> str:
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {word} " + items[-1]


def _who(rule: AccessRule | Limit) -> str:
    parts = []
    if "*" in rule.principals:
        return "Everyone"
    parts += [f"{p}" for p in rule.principals]
    parts += [f"members of role {r}" for r in rule.roles]
    parts += [f"members of group {g}" for g in rule.groups]
    text = _join(parts, "or")
    return text[0].upper() + text[1:] if text else "No one"


def _what(rule: AccessRule) -> str:
    parts = [m.describe() for m in rule.datasets] if rule.datasets else []
    text = _join(parts, "or") if parts else "any dataset"
    text = text.replace("every dataset", "any dataset")
    if rule.classifications:
        text += " classified " + _join(list(rule.classifications), "or")
    return text


def _conditions(when: Condition) -> str:
    parts = []
    if when.purposes:
        parts.append("for " + _join(list(when.purposes), "or"))
    if when.days:
        parts.append("on " + _join(list(when.days), "or"))
    if when.hours:
        a, b = when.hours
        parts.append(f"between {a // 60:02d}:{a % 60:02d} and {b // 60:02d}:{b % 60:02d} UTC")
    for key, values in when.attributes.items():
        parts.append(f"when their {key} is " + _join(list(values), "or"))
    return (" " + " ".join(parts)) if parts else ""


def _access_sentence(rule: AccessRule) -> str:
    verb = "may" if rule.effect == "allow" else "may not"
    actions = _join([_ACTION_WORDS.get(a, a) for a in rule.actions], "or")
    sentence = f"{_who(rule)} {verb} {actions} {_what(rule)}{_conditions(rule.when)}"
    masks = []
    for column, kind in rule.masks.items():
        masks.append(f"{column} values are {_MASK_WORDS.get(kind, kind)}")
    for label, kind in rule.mask_classifications.items():
        masks.append(f"{label} columns are {_MASK_WORDS.get(kind, kind)}")
    if masks:
        sentence += "; " + "; ".join(masks)
    sentence += f" (rule {rule.id})."
    if rule.description:
        sentence += f" {rule.description}"
    return sentence


def _retention_sentence(rule: RetentionRule) -> str:
    clock = {
        "created": "after it is created",
        "last_access": "after it was last read",
    }.get(rule.clock, f"after the event {rule.clock.removeprefix('event:')}")
    parts = []
    if rule.keep_at_least is not None:
        parts.append(f"must be kept at least {_span(rule.keep_at_least)} {clock}")
    if rule.delete_after is not None:
        end = {
            "delete": "deleted",
            "archive": "archived",
            "anonymize": "anonymised",
            "review": "sent for review",
        }[rule.action]
        parts.append(f"is {end} {_span(rule.delete_after)} {clock}")
    subject = rule.match.describe()
    text = f"Data in {subject} " + " and ".join(parts)
    if rule.mode == "compliance":
        text += "; this is locked (compliance mode) and can never be shortened"
    return text + f" (rule {rule.id})."


def explain_policy(policy: Policy) -> str:
    """The policy in plain sentences, grouped by dataset, then by role and principal."""
    lines: list[str] = []
    if policy.classifications:
        lines.append("Classifications")
        for c in policy.classifications.values():
            text = f"- {c.name}"
            if c.description:
                text += f": {c.description}"
            text += "." if not text.endswith(".") else ""
            if c.propagate:
                text += " It follows the data into everything derived from it"
                if c.removed_by:
                    text += (
                        " unless a step named " + _join(list(c.removed_by), "or") + " removes it"
                    )
                text += "."
            else:
                text += " It stays on the datasets it is given to."
            lines.append(text)
        lines.append("")
    if policy.datasets or policy.retention:
        lines.append("Datasets")
        for rule in policy.datasets:
            subject = rule.match.describe()
            bits = []
            if rule.classifications:
                bits.append("is classified " + _join(list(rule.classifications)))
            if rule.owners:
                bits.append("is owned by " + _join(list(rule.owners)))
            for column, labels in rule.columns.items():
                bits.append(f"its column {column} holds " + _join(list(labels)))
            if bits:
                lines.append(f"- {subject[0].upper() + subject[1:]} " + "; ".join(bits) + ".")
        for retention in policy.retention:
            lines.append(f"- {_retention_sentence(retention)}")
        lines.append("")
    roles = [r for r in policy.roles.values() if r.inherits or r.description]
    if roles or policy.principals:
        lines.append("People and roles")
        for role in roles:
            text = f"- Role {role.name}"
            if role.inherits:
                text += " has every right of " + _join(list(role.inherits))
            if role.description:
                text += f" ({role.description})"
            lines.append(text + ".")
        for name, principal in policy.principals.items():
            bits = []
            if principal.roles:
                bits.append("has the role " + _join(list(principal.roles)))
            if principal.groups:
                bits.append("is in " + _join(list(principal.groups)))
            if bits:
                lines.append(f"- {name} " + " and ".join(bits) + ".")
        lines.append("")
    lines.append("Access")
    if not policy.access:
        lines.append("- No one may read, write or export anything through the governed path.")
    for access in sorted(policy.access, key=lambda r: (r.effect != "deny", r.id)):
        lines.append(f"- {_access_sentence(access)}")
    lines.append(
        "- Anything not allowed above is refused, and a refusal always wins over a permission."
    )
    if policy.limits:
        lines.append("")
        lines.append("Limits")
        for lim in policy.limits:
            amounts = []
            if lim.rows is not None:
                amounts.append(f"{lim.rows:,} rows")
            if lim.bytes is not None:
                amounts.append(f"{lim.bytes:,} bytes")
            lines.append(
                f"- {_who(lim)} may read at most {_join(amounts)} in any {_span(lim.window)} "
                f"(limit {lim.id})."
            )
    lines.append("")
    lines.append("Changes")
    if policy.approvals > 1:
        lines.append(
            f"- A change to this policy needs the approval of {policy.approvals} policy admins; "
            "whoever proposes it counts as one and cannot approve it again."
        )
    else:
        lines.append("- A policy admin can change this policy directly, giving a reason.")
    if policy.notify is not None:
        where = policy.notify.webhook or " ".join(policy.notify.command or ())
        lines.append(f"- Data owners are notified through {where}.")
    return "\n".join(lines).rstrip() + "\n"
