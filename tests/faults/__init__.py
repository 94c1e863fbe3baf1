"""Fault and abuse tests: real faults injected into real processes (Prosody, the CLI, the service)."""
