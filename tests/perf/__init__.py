"""Performance benchmarks and the soak run (``python -m tests.perf.bench_core`` / ``.soak``)."""
