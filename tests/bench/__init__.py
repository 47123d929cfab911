"""Benchmarks: print numbers, are not tests. Run inside the test-bed VM with `./dev bench`
(= `python -m tests.bench` in the guest) or one of them with `python -m tests.bench.relay`."""
