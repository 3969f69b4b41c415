"""Microsoft Graph access: credentials, one gateway for raw-JSON calls through the SDK's request
adapter (auth and middleware kept, model deserialization off the hot path), typed errors."""
