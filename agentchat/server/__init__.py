"""The Prosody side: config generation, readiness, the embedded server supervisor."""

from __future__ import annotations

from agentchat.server.embedded import EmbeddedProsody, SupervisionPolicy, ensure_service_secrets
from agentchat.server.prosody_config import (
    ProsodyConfigParams,
    ServiceJids,
    prosody_files_dir,
    render_prosody_config,
    write_prosody_config,
)
from agentchat.server.readiness import wait_for_stream_features

__all__ = [
    "EmbeddedProsody",
    "ProsodyConfigParams",
    "ServiceJids",
    "SupervisionPolicy",
    "ensure_service_secrets",
    "prosody_files_dir",
    "render_prosody_config",
    "wait_for_stream_features",
    "write_prosody_config",
]
