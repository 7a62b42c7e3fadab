"""Ordered, named schema migrations. Append new ones; never edit one that has shipped."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

Migration = Callable[[duckdb.DuckDBPyConnection], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_calls(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE calls (
            trace_id BLOB NOT NULL,
            span_id BLOB NOT NULL,
            parent_span_id BLOB,
            project VARCHAR NOT NULL,
            service VARCHAR,
            environment VARCHAR,
            start_time TIMESTAMPTZ NOT NULL,
            end_time TIMESTAMPTZ NOT NULL,
            duration_ms DOUBLE NOT NULL,
            ttft_ms DOUBLE,
            provider VARCHAR,
            operation VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cache_read_tokens BIGINT,
            cache_write_tokens BIGINT,
            reasoning_tokens BIGINT,
            cost_usd DOUBLE,
            pricing VARCHAR NOT NULL,
            price_source VARCHAR,
            reported_cost_usd DOUBLE,
            streaming BOOLEAN NOT NULL,
            status VARCHAR NOT NULL,
            error_type VARCHAR,
            http_status INTEGER,
            finish_reason VARCHAR,
            user_id VARCHAR,
            session_id VARCHAR,
            tags VARCHAR[],
            metadata MAP(VARCHAR, VARCHAR),
            convention VARCHAR NOT NULL,
            span_name VARCHAR,
            input_content VARCHAR,
            output_content VARCHAR,
            received_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        )
        """
    )


@migration
def m002_spans(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE spans (
            trace_id BLOB NOT NULL,
            span_id BLOB NOT NULL,
            parent_span_id BLOB,
            project VARCHAR NOT NULL,
            service VARCHAR,
            name VARCHAR,
            kind TINYINT,
            start_time TIMESTAMPTZ NOT NULL,
            end_time TIMESTAMPTZ NOT NULL,
            duration_ms DOUBLE NOT NULL,
            status VARCHAR NOT NULL,
            status_message VARCHAR,
            attributes VARCHAR,
            received_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (trace_id, span_id)
        )
        """
    )


@migration
def m003_content_events(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE content_events (
            event_id BLOB PRIMARY KEY,
            trace_id BLOB,
            span_id BLOB,
            project VARCHAR NOT NULL,
            time TIMESTAMPTZ,
            event_name VARCHAR,
            role VARCHAR,
            content VARCHAR,
            received_at TIMESTAMPTZ NOT NULL
        )
        """
    )


@migration
def m004_metric_points(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE metric_points (
            point_id BLOB PRIMARY KEY,
            project VARCHAR NOT NULL,
            service VARCHAR,
            metric VARCHAR NOT NULL,
            unit VARCHAR,
            kind VARCHAR NOT NULL,
            time TIMESTAMPTZ,
            attributes MAP(VARCHAR, VARCHAR),
            count BIGINT,
            sum DOUBLE,
            value DOUBLE,
            min DOUBLE,
            max DOUBLE,
            bucket_counts BIGINT[],
            explicit_bounds DOUBLE[],
            received_at TIMESTAMPTZ NOT NULL
        )
        """
    )


@migration
def m005_call_rollups(db: duckdb.DuckDBPyConnection) -> None:
    """Hourly pre-aggregates of calls (see analytics/rollups.py) and how far they have folded."""
    db.execute(
        """
        CREATE TABLE call_rollups (
            hour_us BIGINT NOT NULL,
            project VARCHAR,
            service VARCHAR,
            environment VARCHAR,
            provider VARCHAR,
            operation VARCHAR,
            request_model VARCHAR,
            response_model VARCHAR,
            status VARCHAR,
            error_type VARCHAR,
            http_status INTEGER,
            streaming BOOLEAN,
            convention VARCHAR,
            n BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            rate_limited BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cache_read_tokens BIGINT NOT NULL,
            cache_write_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            cost_sum DOUBLE,
            priced BIGINT NOT NULL,
            priced_tokens BIGINT NOT NULL,
            unpriced BIGINT NOT NULL,
            unpriced_tokens BIGINT NOT NULL,
            all_tokens BIGINT NOT NULL,
            reported_cost DOUBLE,
            lat_max DOUBLE,
            lat_sum DOUBLE NOT NULL
        )
        """
    )
    db.execute("CREATE TABLE rollup_state (name VARCHAR PRIMARY KEY, folded_through_us BIGINT NOT NULL)")


@migration
def m006_call_error_message(db: duckdb.DuckDBPyConnection) -> None:
    """Why a failed call failed (the client's status or exception message), shown on the Errors and call pages."""
    db.execute("ALTER TABLE calls ADD COLUMN error_message VARCHAR")


@migration
def m007_call_provider_source(db: duckdb.DuckDBPyConnection) -> None:
    """Where a call's provider came from: 'client' (the span said) or 'inferred' (from the model, through
    genai-prices' model matching). Every provider stored before this migration came from its client."""
    db.execute("ALTER TABLE calls ADD COLUMN provider_source VARCHAR")
    db.execute("UPDATE calls SET provider_source = 'client' WHERE provider IS NOT NULL")


@migration
def m008_alert_instances(db: duckdb.DuckDBPyConnection) -> None:
    """One row per alert instance (rule x group-by values x severity), written by evaluation in the transaction of
    its state change and read by notification (alerts/model.py)."""
    db.execute(
        """
        CREATE TABLE alert_instances (
            fingerprint VARCHAR PRIMARY KEY,
            rule_id VARCHAR NOT NULL,
            labels MAP(VARCHAR, VARCHAR) NOT NULL,
            annotations MAP(VARCHAR, VARCHAR),
            state VARCHAR NOT NULL,
            value DOUBLE,
            threshold DOUBLE,
            active_at TIMESTAMPTZ,
            starts_at TIMESTAMPTZ,
            ends_at TIMESTAMPTZ,
            last_eval_at TIMESTAMPTZ,
            error VARCHAR
        )
        """
    )


@migration
def m009_alert_evaluation(db: duckdb.DuckDBPyConnection) -> None:
    """What alert evaluation keeps besides alert_instances (alerts/store.py): an instance's keep_firing_for timer
    and the state an error interrupted; every state change (history); each rule's last evaluation (health); the
    rules created through the API; and the last good copy of the rules file (used when the file is invalid)."""
    db.execute("ALTER TABLE alert_instances ADD COLUMN keep_firing_since TIMESTAMPTZ")
    db.execute("ALTER TABLE alert_instances ADD COLUMN resume_state VARCHAR")
    db.execute("CREATE SEQUENCE alert_history_id")
    db.execute(
        """
        CREATE TABLE alert_history (
            id BIGINT NOT NULL DEFAULT nextval('alert_history_id'),
            changed_at TIMESTAMPTZ NOT NULL,
            rule_id VARCHAR NOT NULL,
            fingerprint VARCHAR NOT NULL,
            labels MAP(VARCHAR, VARCHAR) NOT NULL,
            from_state VARCHAR NOT NULL,
            to_state VARCHAR NOT NULL,
            value DOUBLE,
            threshold DOUBLE,
            reason VARCHAR
        )
        """
    )
    db.execute(
        """
        CREATE TABLE alert_rule_status (
            rule_id VARCHAR PRIMARY KEY,
            evaluated_at TIMESTAMPTZ NOT NULL,
            duration_ms DOUBLE NOT NULL,
            health VARCHAR NOT NULL,
            error VARCHAR,
            series INTEGER NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE alert_rules (
            name VARCHAR PRIMARY KEY,
            spec VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE alert_rule_files (
            path VARCHAR PRIMARY KEY,
            content VARCHAR NOT NULL,
            sha256 VARCHAR NOT NULL,
            loaded_at TIMESTAMPTZ NOT NULL
        )
        """
    )


@migration
def m010_notifications(db: duckdb.DuckDBPyConnection) -> None:
    """Notification (alerts/dispatch.py, alerts/delivery.py): aggregation groups with their timers, the
    notification log (what each channel of a group was last told), the outbox the delivery worker sends from,
    silences, and the last scheduled slot of each digest. The dispatcher changes groups, log and outbox in one
    transaction, so a restart neither repeats nor loses a notification."""
    db.execute(
        """
        CREATE TABLE notify_groups (
            group_key VARCHAR PRIMARY KEY,
            route_id VARCHAR NOT NULL,
            receiver VARCHAR NOT NULL,
            group_labels MAP(VARCHAR, VARCHAR) NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            next_flush_at TIMESTAMPTZ NOT NULL,
            last_flush_at TIMESTAMPTZ
        )
        """
    )
    db.execute(
        """
        CREATE TABLE notify_log (
            group_key VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,
            firing VARCHAR[] NOT NULL,
            resolved VARCHAR[] NOT NULL,
            notified_at TIMESTAMPTZ NOT NULL,
            outbox_id BIGINT,
            PRIMARY KEY (group_key, channel)
        )
        """
    )
    db.execute("CREATE SEQUENCE notify_outbox_id START 1")
    db.execute(
        """
        CREATE TABLE notify_outbox (
            id BIGINT PRIMARY KEY DEFAULT nextval('notify_outbox_id'),
            dedup_key VARCHAR UNIQUE,
            kind VARCHAR NOT NULL,
            receiver VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,
            channel_type VARCHAR NOT NULL,
            target VARCHAR NOT NULL,
            group_key VARCHAR,
            reason VARCHAR,
            status VARCHAR NOT NULL,
            summary VARCHAR,
            payload VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TIMESTAMPTZ,
            last_attempt_at TIMESTAMPTZ,
            last_error VARCHAR,
            sent_at TIMESTAMPTZ
        )
        """
    )
    db.execute(
        """
        CREATE TABLE silences (
            id VARCHAR PRIMARY KEY,
            matchers VARCHAR NOT NULL,
            starts_at TIMESTAMPTZ NOT NULL,
            ends_at TIMESTAMPTZ NOT NULL,
            created_by VARCHAR NOT NULL,
            comment VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    db.execute("CREATE TABLE digest_state (name VARCHAR PRIMARY KEY, last_slot TIMESTAMPTZ NOT NULL)")


@migration
def m011_drift(db: duckdb.DuckDBPyConnection) -> None:
    """Drift and anomaly detection (analytics/drift, analytics/anomalies, analytics/releases.py): the release a call
    came from (resource attribute service.version), release markers, drift runs and their results per cell and
    metric, hourly anomaly scores per service and per model, and how far the incremental jobs have read."""
    db.execute("ALTER TABLE calls ADD COLUMN service_version VARCHAR")
    db.execute("CREATE TABLE detection_state (name VARCHAR PRIMARY KEY, through_us BIGINT NOT NULL)")
    db.execute(
        """
        CREATE TABLE release_markers (
            project VARCHAR NOT NULL,
            service VARCHAR NOT NULL,
            release VARCHAR NOT NULL,
            released_at TIMESTAMPTZ NOT NULL,
            source VARCHAR NOT NULL,
            note VARCHAR,
            recorded_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (project, service, release)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE drift_runs (
            run_id BIGINT PRIMARY KEY,
            computed_at TIMESTAMPTZ NOT NULL,
            current_from TIMESTAMPTZ NOT NULL,
            current_to TIMESTAMPTZ NOT NULL,
            reference_from TIMESTAMPTZ NOT NULL,
            reference_to TIMESTAMPTZ NOT NULL,
            cells INTEGER NOT NULL,
            drifted_cells INTEGER NOT NULL,
            seconds DOUBLE NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE drift_results (
            run_id BIGINT NOT NULL,
            project VARCHAR,
            service VARCHAR,
            model VARCHAR,
            metric VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            test VARCHAR,
            score DOUBLE,
            threshold DOUBLE,
            p_value DOUBLE,
            p_adjusted DOUBLE,
            severity DOUBLE,
            drifted BOOLEAN NOT NULL,
            effect_size DOUBLE,
            effect_measure VARCHAR,
            effect_floor DOUBLE,
            n_reference BIGINT NOT NULL,
            n_current BIGINT NOT NULL,
            reference_from TIMESTAMPTZ NOT NULL,
            reference_to TIMESTAMPTZ NOT NULL,
            current_from TIMESTAMPTZ NOT NULL,
            current_to TIMESTAMPTZ NOT NULL,
            baseline VARCHAR
        )
        """
    )
    db.execute(
        """
        CREATE TABLE anomaly_scores (
            hour_us BIGINT NOT NULL,
            project VARCHAR,
            scope VARCHAR NOT NULL,
            service VARCHAR,
            model VARCHAR,
            metric VARCHAR NOT NULL,
            value DOUBLE,
            calls BIGINT NOT NULL,
            baseline DOUBLE,
            spread DOUBLE,
            score DOUBLE,
            basis VARCHAR,
            history INTEGER NOT NULL,
            anomalous BOOLEAN NOT NULL,
            scored_at TIMESTAMPTZ NOT NULL
        )
        """
    )


@migration
def m012_call_model(db: duckdb.DuckDBPyConnection) -> None:
    """One name per model: the canonical model identity of a call (collector/model_names.py), in `calls` and in the
    hourly rollups. Existing rows are filled by collector.model_names.backfill when `callscope serve` opens the
    store (it needs genai-prices' model matching, which the store's layer does not import)."""
    db.execute("ALTER TABLE calls ADD COLUMN model VARCHAR")
    db.execute("ALTER TABLE call_rollups ADD COLUMN model VARCHAR")


@migration
def m013_price_book_budgets(db: duckdb.DuckDBPyConnection) -> None:
    """Budgets and the price book (core/pricebook.py, analytics/budgets.py, collector/reprice.py): the price entry
    a call was priced by, price entries with effective dates and their audit log, re-pricing runs and the cost
    each re-priced call had before (the audit trail), and budgets."""
    db.execute("ALTER TABLE calls ADD COLUMN price_entry_id BIGINT")
    db.execute(
        """
        CREATE TABLE price_entries (
            entry_id BIGINT PRIMARY KEY,
            source VARCHAR NOT NULL,
            provider VARCHAR NOT NULL,
            model VARCHAR NOT NULL,
            input_mtok DOUBLE NOT NULL,
            cache_read_mtok DOUBLE,
            cache_write_mtok DOUBLE,
            output_mtok DOUBLE NOT NULL,
            reasoning_mtok DOUBLE,
            valid_from TIMESTAMPTZ,
            valid_to TIMESTAMPTZ,
            note VARCHAR,
            created_at TIMESTAMPTZ NOT NULL,
            deleted BOOLEAN NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE price_audit (
            audit_id BIGINT PRIMARY KEY,
            "at" TIMESTAMPTZ NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            entry_id BIGINT NOT NULL,
            old VARCHAR,
            new VARCHAR
        )
        """
    )
    db.execute(
        """
        CREATE TABLE reprice_runs (
            run_id BIGINT PRIMARY KEY,
            actor VARCHAR NOT NULL,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            range_from TIMESTAMPTZ NOT NULL,
            range_to TIMESTAMPTZ NOT NULL,
            filters VARCHAR NOT NULL,
            status VARCHAR NOT NULL,
            total BIGINT NOT NULL,
            scanned BIGINT NOT NULL,
            changed BIGINT NOT NULL,
            error VARCHAR
        )
        """
    )
    db.execute(
        """
        CREATE TABLE cost_history (
            run_id BIGINT NOT NULL,
            trace_id BLOB NOT NULL,
            span_id BLOB NOT NULL,
            old_cost_usd DOUBLE,
            old_pricing VARCHAR,
            old_price_source VARCHAR,
            old_price_entry_id BIGINT,
            new_cost_usd DOUBLE,
            new_pricing VARCHAR,
            new_price_entry_id BIGINT,
            changed_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE budgets (
            budget_id BIGINT PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            source VARCHAR NOT NULL,
            filters VARCHAR NOT NULL,
            period VARCHAR NOT NULL,
            days INTEGER,
            tz VARCHAR NOT NULL,
            amount_usd DOUBLE NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )
        """
    )


@migration
def m014_retention(db: duckdb.DuckDBPyConnection) -> None:
    """Retention and storage (analytics/retention.py):
    - `retention_state`: per kind and project, the time before which rows were removed (for raw calls: the hour
      below which rollups can no longer be re-folded from raw calls, so late calls are added to them instead);
    - `call_rollups_daily`: hourly rollups past their policy merged per UTC day (the hourly table's own columns,
      whatever other migrations added to it);
    - `retention_runs`: what each run removed;
    - `calls` without its primary key: the key's index took ~150 bytes per call (more than all the columns
      together, ~83 bytes at 10M calls); the writer now finds re-sent calls by (trace_id, span_id, start_time)
      itself (collector/writer.py). The table is rebuilt from its live column list (every column another
      migration added survives, with its type and NOT NULL), in start_time order so zone maps prune by time."""
    db.execute(
        """
        CREATE TABLE retention_state (
            kind VARCHAR NOT NULL,
            project VARCHAR NOT NULL,
            before_us BIGINT NOT NULL,
            PRIMARY KEY (kind, project)
        )
        """
    )
    db.execute("CREATE TABLE call_rollups_daily AS FROM call_rollups LIMIT 0")
    db.execute(
        """
        CREATE TABLE retention_runs (
            started_at TIMESTAMPTZ NOT NULL,
            dry_run BOOLEAN NOT NULL,
            trigger VARCHAR NOT NULL,
            removed MAP(VARCHAR, BIGINT) NOT NULL,
            seconds DOUBLE NOT NULL
        )
        """
    )
    not_null = [
        name
        for (names,) in db.execute(
            "SELECT constraint_column_names FROM duckdb_constraints()"
            " WHERE table_name = 'calls' AND constraint_type = 'NOT NULL'"
        ).fetchall()
        for name in names
    ]
    db.execute("CREATE TABLE calls_m014 AS SELECT * FROM calls ORDER BY start_time")
    db.execute("DROP TABLE calls")
    db.execute("ALTER TABLE calls_m014 RENAME TO calls")
    for name in not_null:
        db.execute(f'ALTER TABLE calls ALTER COLUMN "{name}" SET NOT NULL')


@migration
def m015_access(db: duckdb.DuckDBPyConnection) -> None:
    """Users, their roles per project, sign-in sessions, stored API keys and the audit log (core/users.py,
    core/audit.py). Passwords and keys are stored only as hashes (argon2 for passwords, SHA-256 for random
    tokens); a session token or key is shown once, when it is made."""
    db.execute(
        """
        CREATE TABLE users (
            name VARCHAR PRIMARY KEY,
            password_hash VARCHAR,
            created_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE user_grants (
            user_name VARCHAR NOT NULL,
            project VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            PRIMARY KEY (user_name, project)
        )
        """
    )
    db.execute(
        """
        CREATE TABLE user_sessions (
            token_sha256 VARCHAR PRIMARY KEY,
            user_name VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            expires_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE access_keys (
            id VARCHAR PRIMARY KEY,
            key_sha256 VARCHAR NOT NULL UNIQUE,
            project VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            note VARCHAR,
            created_by VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL
        )
        """
    )
    db.execute("CREATE SEQUENCE audit_log_id START 1")
    db.execute(
        """
        CREATE TABLE audit_log (
            id BIGINT PRIMARY KEY DEFAULT nextval('audit_log_id'),
            changed_at TIMESTAMPTZ NOT NULL,
            actor VARCHAR NOT NULL,
            actor_kind VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            object_kind VARCHAR NOT NULL,
            object_id VARCHAR NOT NULL,
            project VARCHAR,
            before JSON,
            after JSON
        )
        """
    )
