"""Notification inside `callscope serve`: the dispatcher, the delivery worker and the digest scheduler as
APScheduler jobs on their own scheduler, and the API routes. Every job logs a failure, counts it and carries on;
the next run starts from what the store holds."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
from apscheduler.schedulers.background import BackgroundScheduler

from alerts.delivery import DeliveryWorker, EmailSender, RetryPolicy, Sharing, WebhookSender
from alerts.digest_schedule import DigestScheduler
from alerts.dispatch import Dispatcher
from alerts.notify_config import ConfigError, NotifyConfig, parse_notify_config
from alerts.smtp import SmtpSettings

log = logging.getLogger("callscope.notify")


def load_config(settings) -> NotifyConfig:
    """The config file's [alerts] and [[digests]], checked against the settings (e-mail needs an SMTP server)."""
    config = parse_notify_config(settings.alerts_config, list(settings.digests_config))
    if not settings.smtp_host:
        for i, receiver in enumerate(config.receivers.values()):
            if any(c.kind == "email" for c in receiver.channels):
                raise ConfigError(
                    f"alerts.receivers[{i}].email_configs: receiver {receiver.name!r} sends e-mail, but smtp_host"
                    " is not set (CALLSCOPE_SMTP_HOST or smtp_host in the config file)"
                )
        if config.digests:
            raise ConfigError("digests: digests are e-mails, but smtp_host is not set (CALLSCOPE_SMTP_HOST)")
    return config


class NotifyService:
    def __init__(
        self,
        db: duckdb.DuckDBPyConnection,
        settings,
        config: NotifyConfig | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sharing: Sharing | None = None,
    ) -> None:
        """`sharing`: how a node of a shared store (a lake) serialises its writes with the other nodes and fences
        the jobs of the job lease (alerts/delivery.py); None: the embedded store."""
        self.db = db
        self.sharing = sharing or Sharing()
        self.config = config if config is not None else load_config(settings)
        self.smtp = SmtpSettings.from_settings(settings)
        self.interval_s = settings.notify_interval_seconds
        self.dispatcher = Dispatcher(
            db, self.config, external_url=settings.dashboard_link, clock=clock, job_lock=self.sharing.job_lock
        )
        self.delivery = DeliveryWorker(
            db,
            {"email": EmailSender(self.smtp), "webhook": WebhookSender()},
            RetryPolicy(
                timedelta(seconds=settings.notify_retry_seconds),
                timedelta(seconds=settings.notify_retry_max_seconds),
                timedelta(hours=settings.notify_give_up_hours),
            ),
            clock=clock,
            sharing=self.sharing,
        )
        self.digests = DigestScheduler(
            db,
            self.config.digests,
            settings.dashboard_link,
            clock=clock,
            lock=self.sharing.lock,
            job_lock=self.sharing.job_lock,
        )
        self.failures = {"dispatch": 0, "delivery": 0, "digests": 0}
        self._delivery_lock = threading.Lock()
        self.scheduler: BackgroundScheduler | None = None

    # -- the jobs: each logs and carries on ------------------------------------------------------------------

    def dispatch(self) -> None:
        try:
            self.dispatcher.tick()
        except Exception:
            self.failures["dispatch"] += 1
            log.exception("the dispatcher failed; nothing of this tick was kept, the next tick decides again")

    def deliver(self, budget_s: float = 30.0) -> None:
        if not self._delivery_lock.acquire(blocking=False):
            return  # one delivery pass at a time, so a row is never sent by two passes
        try:
            started = time.monotonic()
            # a storm queues thousands of messages: keep sending while whole batches were due, for a while
            while self.delivery.run_once(limit=50).attempted == 50 and time.monotonic() - started < budget_s:
                pass
        except Exception:
            self.failures["delivery"] += 1
            log.exception("the delivery worker failed; unsent notifications stay in the outbox")
        finally:
            self._delivery_lock.release()

    def schedule_digests(self) -> None:
        try:
            self.digests.tick()
        except Exception:
            self.failures["digests"] += 1
            log.exception("queueing scheduled digests failed; the next run retries")

    def start(self) -> None:
        self.scheduler = BackgroundScheduler(timezone=UTC, job_defaults={"coalesce": True, "max_instances": 1})
        first = datetime.now(UTC)
        for name, job in (("dispatch", self.dispatch), ("deliver", self.deliver), ("digests", self.schedule_digests)):
            self.scheduler.add_job(job, "interval", seconds=self.interval_s, id=f"notify-{name}", next_run_time=first)
        self.scheduler.start()
        channels = sum(len(r.channels) for r in self.config.receivers.values())
        log.info(
            "%d receiver(s) with %d channel(s), %d digest(s); dispatching every %gs",
            len(self.config.receivers),
            channels,
            len(self.config.digests),
            self.interval_s,
        )

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=True)
            self.scheduler = None

    def describe(self) -> dict[str, Any]:
        """The configuration as the API shows it: secrets masked."""
        smtp = self.smtp
        return {
            **self.config.describe(),
            "smtp": {
                "host": smtp.host,
                "port": smtp.port,
                "security": smtp.security,
                "user": smtp.user,
                "password": "<set>" if smtp.password else None,
                "from": smtp.from_address,
            },
            "failures": dict(self.failures),
        }
