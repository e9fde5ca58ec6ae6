"""The simulator's own errors: it imports nothing of Sirena's, so it stands alone as a test double
of an SMSC. Same shape as Sirena's errors (a message and details naming fields), so `sirena
smsc-sim` prints them, and exits with them, as it prints its own."""

from __future__ import annotations


class SimError(Exception):
    """Base of every error the simulator reports; `details` names fields and reasons."""

    code = "error"
    exit_code = 1

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": self.message, "details": self.details}


class NotFound(SimError):
    code = "not_found"
    exit_code = 3


class InvalidInput(SimError):
    code = "invalid_input"
    exit_code = 2


class ConfigError(SimError):
    """A simulator configuration file or value is wrong; stops start-up."""

    code = "config"
    exit_code = 2
