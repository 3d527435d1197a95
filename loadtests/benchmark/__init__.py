"""Benchmarks: the service against a naive server, Ray Serve's tutorial and the engine alone, loaded by wrk
(`python -m loadtests.benchmark`), and the engine alone against transformers (`bench_engine`)."""
