"""Offline checks of the deployment in infra/: bicep syntax, security checks, settings coverage."""
