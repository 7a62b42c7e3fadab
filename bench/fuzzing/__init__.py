"""A property-based and mutation fuzzer for the OTLP receivers, shared by the CI test (tests/test_fuzz_server.py)
and the long run (bench/fuzz.py).

It lives under bench/ because bench scripts may not import tests/, while tests may import bench: the
mutators (mutators.py, wire.py), the cases built from real captured bodies (cases.py) and the driver that
sends them to a real server and judges the answers (driver.py) are one code path for both runs. The seed
bodies are read as data from tests/fixtures.
"""
