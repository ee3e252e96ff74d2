"""The simulator's sessions: issued access tokens and the login checksum."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from actors.config._schema import SimConfig
from actors.kitesim._kite import KiteError

__all__ = ["TOKEN_BYTES", "Sessions"]

TOKEN_BYTES = 16
"""Random bytes in an access token (hex-encoded: twice as many characters)."""


class Sessions:
    """Issued access tokens of the one simulated API key.

    Contract: :meth:`login` accepts any request token whose checksum is
    sha256(api_key + request_token + api_secret) (compared in constant time);
    a token is valid until revoked (logout, or the ``token_expired`` fault).
    """

    def __init__(self, sim: SimConfig) -> None:
        self.api_key = sim.api_key
        self._secret = sim.api_secret
        self._tokens: set[str] = set()

    def issue(self) -> str:
        """A new valid access token."""
        token = secrets.token_hex(TOKEN_BYTES)
        self._tokens.add(token)
        return token

    def login(self, api_key: str, request_token: str, checksum: str) -> str:
        """Exchange a request token for an access token; TokenException if it does not check."""
        expected = hashlib.sha256(
            (api_key + request_token + self._secret).encode()).hexdigest()
        if api_key != self.api_key or not hmac.compare_digest(expected, checksum.lower()):
            raise KiteError("TokenException", "Invalid `checksum`.")
        return self.issue()

    def valid(self, api_key: str, token: str) -> bool:
        """True iff ``token`` is a live token of this simulator's API key."""
        return api_key == self.api_key and token in self._tokens

    def revoke(self, token: str) -> bool:
        """Invalidate one token; whether it was live."""
        live = token in self._tokens
        self._tokens.discard(token)
        return live

    def revoke_all(self) -> None:
        """Invalidate every token."""
        self._tokens.clear()
