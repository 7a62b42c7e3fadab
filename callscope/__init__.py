"""callscope: observability and cost monitoring for LLM calls."""

__version__ = "0.1.0"
