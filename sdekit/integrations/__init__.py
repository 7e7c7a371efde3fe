"""Bridges to other libraries' models (imported on use): :mod:`sdekit.integrations.diffusers`."""
