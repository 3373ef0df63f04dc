"""A local HTTP server that speaks Klaviyo's API (revision 2026-07-15) over generated data.

from klaviyo_etl.sandbox import SandboxConfig, SandboxData, serve
cfg = SandboxConfig(seed=7, profiles=300, events=3000)
data = SandboxData.generate(cfg)
with serve(data, cfg) as server:
    ...  # point the client at server.url with cfg.api_key
"""

from typing import Any

from klaviyo_etl.sandbox.config import DEFAULT_API_KEY, SandboxConfig

__all__ = ["DEFAULT_API_KEY", "SandboxConfig", "SandboxData", "SandboxServer", "SandboxStats", "serve"]
_LAZY = {"SandboxData": "data", "SandboxServer": "server", "SandboxStats": "server", "serve": "server"}


def __getattr__(name: str) -> Any:
    # The generator and server load on first use, so the CLI starts fast.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"klaviyo_etl.sandbox.{_LAZY[name]}"), name)
    raise AttributeError(name)
