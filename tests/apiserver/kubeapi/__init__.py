"""Kubernetes API test server (see tests/apiserver/README.md)."""
