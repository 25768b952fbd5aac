"""Policies and manifests: what the keys mean (config.py) and how a candidate is judged (judge.py, CHECKS)."""
