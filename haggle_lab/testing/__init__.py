"""Test support shipped with haggle: scripted actors, observers, a local Messages API server."""
