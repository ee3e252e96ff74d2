"""The Kite Connect v3 simulator: one engine (the paper matching engine and the
synthetic market), two faces (Kite's REST API over HTTP and its WebSocket ticker).

* :class:`SimServer` - start it, point ``KiteConnect(api_key, root=server.url)``
  and ``KiteTicker(..., root=server.ws_url)`` at it, stop it.
* :func:`parse_faults` / :class:`FaultSpec` - the fault spec grammar
  (``latency_ms=50,error_5xx=0.05,reject=0.1``; see ``_faults.py``).

``GET /_sim/stats``, ``GET /_sim/clock``, ``POST /_sim/faults`` and
``POST /_sim/positions`` are the simulator's own control routes.
"""

from actors.kitesim._faults import FaultSpec, parse_faults
from actors.kitesim._server import SimServer

__all__ = ["FaultSpec", "SimServer", "parse_faults"]
