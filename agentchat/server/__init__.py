"""The Prosody side: config generation (prosody_config), readiness, the embedded server (embedded)."""
