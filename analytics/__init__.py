"""Queries and polars jobs over the store: statistics, rollups, exports. All SQL of the read path lives here."""
