"""ZenML steps: thin adapters that call ferkit, log to MLflow and return named artifacts.

Nothing here runs at import time; every step can be called through
`step.entrypoint(...)` in tests without a stack.
"""
