"""Deployment tooling: the HAProxy config renderer and the one-machine cluster launcher."""
