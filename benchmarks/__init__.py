"""Benchmarks (not tests): `./dev.sh bench NAME [options]`; each prints its figures."""
