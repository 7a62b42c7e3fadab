"""Who may do what: roles granted per project, and the principal a request acts as.

A principal is a signed-in user, an API key, or (local mode: no users, keys or OIDC configured, loopback only)
the machine's own user. Its grants map a project (or ALL, every project) to a role; a role includes the ones
below it. Nothing here knows HTTP: analytics/access.py turns it into the API's checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

ALL = "*"  # a grant on every project, present and future


class Role(IntEnum):
    viewer = 1  # read calls, statistics, alerts
    editor = 2  # change rules, silences, budgets, prices, release markers
    admin = 3  # manage users and keys, read the audit log

    @classmethod
    def parse(cls, text: str) -> Role:
        try:
            return cls[str(text).strip().lower()]
        except KeyError:
            raise ValueError(f"role must be viewer, editor or admin, got {text!r}") from None


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: `kind` is user, key or local; `name` is what the audit log records."""

    name: str
    kind: str
    grants: Mapping[str, Role] = field(default_factory=dict)

    def role_in(self, project: str) -> Role | None:
        """The highest role granted on this project (directly or through ALL)."""
        roles = [r for p, r in self.grants.items() if p in (project, ALL)]
        return max(roles) if roles else None

    def can(self, role: Role, project: str) -> bool:
        found = self.role_in(project)
        return found is not None and found >= role

    def everywhere(self, role: Role) -> bool:
        """Whether `role` is granted on every project (what server-wide objects need)."""
        found = self.grants.get(ALL)
        return found is not None and found >= role

    def projects(self, role: Role = Role.viewer) -> frozenset[str] | None:
        """The projects this principal holds `role` on; None means every project."""
        if self.everywhere(role):
            return None
        return frozenset(p for p, r in self.grants.items() if p != ALL and r >= role)

    @property
    def top_role(self) -> Role | None:
        return max(self.grants.values()) if self.grants else None


LOCAL = Principal("local", "local", {ALL: Role.admin})
