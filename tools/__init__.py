"""Maintenance scripts that are neither the service nor its load tests."""
