"""Gating one model: the pipeline of stages (inspect, load, reference, search, diagnose), the candidate
search and the diagnosis of a failing candidate.
"""
