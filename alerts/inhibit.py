"""Inhibition, as Alertmanager's inhibitor: a firing source alert mutes the target alerts that share its values of
the `equal` labels. An alert that matches both sides is never muted by itself or by another alert that does too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from alerts.matchers import matches_all
from alerts.model import Alert
from alerts.notify_config import InhibitRule


def _equal_names(rule: InhibitRule, source: Mapping[str, str], target: Mapping[str, str]) -> Iterable[str]:
    if rule.equal_all_except is None:
        return rule.equal
    return (set(source) | set(target)) - set(rule.equal_all_except)


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule], firing: Iterable[Alert]) -> None:
        self._rules = [(rule, [a for a in firing if matches_all(rule.source, a.labels)]) for rule in rules]

    def inhibited_by(self, alert: Alert) -> Alert | None:
        """The firing alert that mutes `alert`, or None."""
        labels = alert.labels
        for rule, sources in self._rules:
            if not sources or not matches_all(rule.target, labels):
                continue
            target_is_source = matches_all(rule.source, labels)
            for source in sources:
                if source.fingerprint == alert.fingerprint:
                    continue
                if target_is_source and matches_all(rule.target, source.labels):
                    continue  # Alertmanager's two-sided match exclusion
                names = _equal_names(rule, source.labels, labels)
                if all(source.labels.get(n, "") == labels.get(n, "") for n in names):
                    return source
        return None
