"""Policies and manifests: what the keys mean (config.py, manifest.py) and how a candidate is judged (judge.py,
CHECKS)."""
