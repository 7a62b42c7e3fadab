"""alerts: to be built (see ARCHITECTURE.md)."""
