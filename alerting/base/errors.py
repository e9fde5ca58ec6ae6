"""Domain errors: raised by services, turned into messages once per interface (web, API, CLI)."""

from __future__ import annotations


class SirenaError(Exception):
    """Base of every error a user may see. `details` names fields and reasons."""

    code = "error"
    exit_code = 1
    http_status = 500

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    @property
    def field_errors(self) -> dict[str, str]:
        """`details["fields"]` (field name → reason) as strings; empty when the error names no field."""
        found = self.details.get("fields")
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "details": self.details}


class NotFound(SirenaError):
    code = "not_found"
    exit_code = 3
    http_status = 404


class InvalidInput(SirenaError):
    code = "invalid_input"
    exit_code = 2
    http_status = 422


class InvalidTransition(SirenaError):
    code = "invalid_transition"
    exit_code = 4
    http_status = 409


class Refused(SirenaError):
    """A privileged action refused. The error boundary audits it in a fresh transaction."""

    code = "refused"
    exit_code = 5
    http_status = 403


class TwoPersonRuleViolated(Refused):
    code = "two_person_rule"


class ConfigError(SirenaError):
    """A setting or configuration file is missing or malformed; stops start-up."""

    code = "config"
    exit_code = 2


class SetupError(SirenaError):
    """`sirena setup` could not install or start something; the message says what to do."""

    code = "setup"
    exit_code = 6
