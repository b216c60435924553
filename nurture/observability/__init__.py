"""What operators watch: structured logs and Prometheus metrics, shared by every process.

Imports no other part of nurture (a contract says so), so web, tasks and the CLI can all use it.
"""
