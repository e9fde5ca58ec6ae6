"""Who did something: an operator, an API token, an e-mail sender, a CAP source or the system."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Actor:
    kind: str  # "operator" | "token" | "email" | "cap" | "system"
    name: str  # username, token name, e-mail address, CAP sender, job name
    operator_id: int | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    interface: str = "cli"  # console / api / cli / email / cap / worker
    address: str | None = None  # IP address or e-mail origin
    user_agent: str | None = None
    token_id: int | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(kind="system", name=name, interface="worker")

    def has_role(self, role: str) -> bool:
        return role in self.roles
