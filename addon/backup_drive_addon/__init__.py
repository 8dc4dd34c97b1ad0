"""Backup Drive add-on: the Supervisor glue that s6 runs around the server."""
