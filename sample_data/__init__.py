"""Sample traffic: a seeded generator of realistic LLM calls (traffic.py, with the incidents of script.py), sent
to a collector over real OTLP (otlp.py, send.py) or written straight into a stopped store (bulk.py)."""
