"""Load-test results: parsers for k6, Locust, pgbench, redis-benchmark and wrk, and the sweep."""
