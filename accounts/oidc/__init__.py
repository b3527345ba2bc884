"""Atrium's OpenID Connect provider: allauth's `openid_connect` with a nonce and strict ID tokens."""
