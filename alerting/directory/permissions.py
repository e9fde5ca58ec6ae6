"""Who may do what: THE authorization table, and the one function that applies it.

Every interface consults this module and nothing else: the console's view decorator
(`alerting.interfaces.web.security.requires`), every REST API operation (its `action` and `scope`, checked
on every request against the operator's roles as they are now), `tokens create` (a token never
holds a scope its operator's roles cannot use) and the services (`require`), so a role removed
from an operator takes effect at once on their console session and on every token they hold.

- ACTIONS: action → the roles that may do it. An operator may do an action if they hold ANY of
  those roles. System actors (the scheduler, the workers, a shell on the server running `sirena`)
  are not limited here: whoever runs the CLI already holds the database credentials.
- SCOPES: API scope → the actions it unlocks. The roles that may hold a scope are derived: those
  that may do at least one of its actions (`scope_roles`).

Beyond this table, the two-person rule (authors never approve) and the other safety rules live
in the services (alerting/alerts/lifecycle.py and its guards, alerting/alerts/guards.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from alerting.base.errors import InvalidInput, Refused
from alerting.base.models import Role
from audit.actor import Actor

C, AP, AD, AU = Role.COMPOSER.value, Role.APPROVER.value, Role.ADMIN.value, Role.AUDITOR.value
EVERY_ROLE = frozenset({C, AP, AD, AU})

ACTIONS: dict[str, frozenset[str]] = {
    # every operator: their own account, the dashboard, the zone layer of the maps, alerts as they go
    "account.own": EVERY_ROLE,
    "dashboard.view": EVERY_ROLE,
    "zones.map": EVERY_ROLE,
    "alerts.read": EVERY_ROLE,
    "schedules.read": EVERY_ROLE,
    "templates.read": EVERY_ROLE,
    # composing (a composer never approves what they composed, edited or submitted: lifecycle.py)
    "alerts.compose": frozenset({C}),
    "alerts.submit": frozenset({C}),
    "alerts.preview": frozenset({C, AP}),
    "cap.import": frozenset({C}),
    "schedules.create": frozenset({C}),
    "schedules.resume": frozenset({C}),
    # the template library: written by composers and admins, approved by two approvers who did not
    # write it (alerting/alerts/templates.py)
    "templates.write": frozenset({C, AD}),
    # approving
    "alerts.approve": frozenset({AP}),
    "alerts.reject": frozenset({AP}),
    "schedules.approve": frozenset({AP}),
    "templates.approve": frozenset({AP}),
    # once it is out: stop it, correct it, chase it, answer one responder
    "alerts.cancel": frozenset({C, AP, AD}),
    "alerts.correct": frozenset({AP, AD}),  # the PRE-APPROVED correction or cancellation, in one step
    "alerts.propose_correction": frozenset({C, AP, AD}),
    "alerts.escalate": frozenset({C, AP, AD}),
    "replies.answer": frozenset({C, AP, AD}),
    "replies.handle_help": frozenset({C, AP, AD}),  # a HELP stays pinned until someone marks it handled
    "alerts.non_responders": frozenset({C, AP, AD}),  # their numbers as CSV, to phone them
    "replies.read_unmatched": frozenset({C, AP, AU}),
    "schedules.stop": frozenset({C, AP, AD}),
    "schedules.delete": frozenset({C, AD}),
    # incidents: their alerts grouped, and the after-action report (non-responders' list: alerts.non_responders)
    "incidents.read": EVERY_ROLE,
    "incidents.manage": frozenset({C, AP, AD}),  # open, close, put alerts in (and take them out)
    # the directory: read by those who aim alerts, changed by admins only
    "directory.read": frozenset({C, AP, AD}),
    "contacts.write": frozenset({AD}),
    "groups.write": frozenset({AD}),
    "zones.write": frozenset({AD}),
    "zones.draw": frozenset({C, AD}),  # a zone drawn on the compose map, or a CAP polygon
    # administration and audit
    "operators.manage": frozenset({AD}),  # also: bound an operator to an area (alerting/directory/areas.py)
    "tokens.manage": frozenset({AD}),
    "senders.read": frozenset({AD}),
    "webhooks.manage": frozenset({AD}),
    # self-registration by SMS: publish keywords, switch it on, read and export who registered
    "registration.manage": frozenset({AD}),
    "audit.read": frozenset({AU, AD}),
}

SCOPES: dict[str, frozenset[str]] = {
    "read": frozenset({"alerts.read", "schedules.read", "directory.read", "alerts.preview",
                       "replies.read_unmatched", "templates.read", "incidents.read"}),
    "alerts:draft": frozenset({"alerts.compose", "alerts.propose_correction", "cap.import", "schedules.create",
                               "templates.write", "incidents.manage"}),
    "alerts:submit": frozenset({"alerts.submit"}),
    "alerts:approve": frozenset({"alerts.approve", "alerts.reject", "alerts.correct", "schedules.approve",
                                 "templates.approve"}),
    "alerts:cancel": frozenset({"alerts.cancel", "schedules.stop"}),
    "contacts:write": frozenset({"contacts.write"}),
    "groups:write": frozenset({"groups.write"}),
    "zones:write": frozenset({"zones.write"}),
}

assert all(a in ACTIONS for actions in SCOPES.values() for a in actions), "a scope unlocks an unknown action"


def roles_for(action: str) -> frozenset[str]:
    """The roles that may do `action`. KeyError for an action not in the table (a programming error)."""
    return ACTIONS[action]


def scope_roles(scope: str) -> frozenset[str]:
    """The roles that may hold `scope` in a token: those that may do any of its actions."""
    return frozenset().union(*(ACTIONS[a] for a in SCOPES[scope]))


def allowed(roles: Iterable[str], action: str) -> bool:
    """True when an operator with `roles` may do `action`."""
    return bool(ACTIONS[action] & set(roles))


def _needs(roles: frozenset[str]) -> str:
    return " or ".join(sorted(roles))


def require(actor: Actor, action: str, what: str | None = None) -> None:
    """Refused (403, audited by the caller's error boundary) unless `actor` may do `action`.

    System actors pass. A token's actor carries its operator's roles read on this request, so a
    role taken away stops the token at once.
    """
    if actor.kind == "system":
        return
    needed = ACTIONS[action]
    if not needed & actor.roles:
        raise Refused(f"{actor.name} may not {what or action} (needs the {_needs(needed)} role)",
                      fields={"action": f"{action} needs the {_needs(needed)} role"}, action=action,
                      needs=sorted(needed))


def check_scopes(scopes: Iterable[str], roles: Iterable[str], operator: str) -> list[str]:
    """The scopes, sorted and deduplicated, if every one is known and holdable by an operator with
    `roles`; else InvalidInput naming each unknown scope, or Refused naming each scope and the role
    it needs (a token never outranks its operator)."""
    wanted = sorted(set(scopes))
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise InvalidInput("invalid scopes", fields={"scope": f"unknown: {', '.join(unknown) or 'none given'}; "
                                                               f"known: {', '.join(sorted(SCOPES))}"})
    have = set(roles)
    beyond = {s: scope_roles(s) for s in wanted if not scope_roles(s) & have}
    if beyond:
        why = "; ".join(f"scope {s} needs the {_needs(r)} role" for s, r in beyond.items())
        raise Refused(f"{operator} has the role(s) {', '.join(sorted(have)) or 'none'}: {why}",
                      fields={"scope": why}, scopes=sorted(beyond))
    return wanted


def require_scope(actor: Actor, scope: str) -> None:
    """For an API token: Refused unless it carries `scope` AND its operator's roles (now) may hold it."""
    if scope not in actor.scopes:
        raise Refused(f"this token lacks the {scope} scope", fields={"scope": f"{scope} required"}, scope=scope)
    if not scope_roles(scope) & actor.roles:
        raise Refused(f"{actor.name}: the {scope} scope needs the {_needs(scope_roles(scope))} role, which the "
                      "token's operator no longer has", fields={"scope": f"{scope} needs {_needs(scope_roles(scope))}"},
                      scope=scope)
