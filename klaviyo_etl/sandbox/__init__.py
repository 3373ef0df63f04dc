"""A local HTTP server that speaks Klaviyo's API (revision 2026-07-15) over generated data.

from klaviyo_etl.sandbox import SandboxConfig, SandboxData, serve
cfg = SandboxConfig(seed=7, profiles=300, events=3000)
data = SandboxData.generate(cfg)
with serve(data, cfg) as server:
    ...  # point the client at server.url with cfg.api_key
"""

from klaviyo_etl.lazy import lazy_names
from klaviyo_etl.sandbox.config import DEFAULT_API_KEY, SandboxConfig

__all__ = ["DEFAULT_API_KEY", "SandboxConfig", "SandboxData", "SandboxServer", "SandboxStats", "serve"]
# The generator and server load on first use, so the CLI starts fast.
__getattr__ = lazy_names(
    __name__, {"SandboxData": "data", "SandboxServer": "server", "SandboxStats": "server", "serve": "server"}
)
