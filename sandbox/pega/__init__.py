"""Pega simulator: DX API v2, SA API v1, OAuth2 token endpoint, outbound Connect-REST calls, /_sim/ control."""
