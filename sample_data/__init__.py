"""sample_data: to be built (see ARCHITECTURE.md)."""
