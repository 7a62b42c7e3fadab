"""OTLP in: receivers, decoding, conventions, pricing and the batched single writer."""
