"""Inhibition, as Alertmanager's inhibitor: a firing source alert mutes the target alerts that share its values of
the `equal` labels. An alert that matches both sides is never muted by itself or by another alert that does too.

Sources are indexed by their values of the labels that must be equal, so muting N alerts costs O(N), not O(N^2).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

from alerts.matchers import matches_all
from alerts.model import Alert
from alerts.notify_config import InhibitRule


def _key(rule: InhibitRule, labels: Mapping[str, str]) -> Hashable:
    """What a source and a target must share: the `equal` labels' values (a missing label is ""), or every label
    but the `equal_all_except` ones."""
    if rule.equal_all_except is None:
        return tuple(labels.get(name, "") for name in rule.equal)
    return frozenset((k, v) for k, v in labels.items() if k not in rule.equal_all_except and v != "")


class Inhibitor:
    def __init__(self, rules: Iterable[InhibitRule], firing: Iterable[Alert]) -> None:
        firing = list(firing)
        self._rules: list[tuple[InhibitRule, dict[Hashable, list[Alert]]]] = []
        for rule in rules:
            index: dict[Hashable, list[Alert]] = {}
            for alert in firing:
                if matches_all(rule.source, alert.labels):
                    index.setdefault(_key(rule, alert.labels), []).append(alert)
            self._rules.append((rule, index))

    def inhibited_by(self, alert: Alert) -> Alert | None:
        """The firing alert that mutes `alert`, or None."""
        labels = alert.labels
        for rule, index in self._rules:
            if not index or not matches_all(rule.target, labels):
                continue
            target_is_source = matches_all(rule.source, labels)
            for source in index.get(_key(rule, labels), ()):
                if source.fingerprint == alert.fingerprint:
                    continue
                if target_is_source and matches_all(rule.target, source.labels):
                    continue  # Alertmanager's two-sided match exclusion
                return source
        return None
