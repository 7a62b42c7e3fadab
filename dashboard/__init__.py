"""dashboard: to be built (see ARCHITECTURE.md)."""
