"""Streamzy: a self-hosted, security-first real-time chat server."""

__version__ = "0.1.0"
