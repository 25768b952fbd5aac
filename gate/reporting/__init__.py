"""Reports: report.json, report.md and the PR comment rendered from results, comparison with a baseline,
and checking results read back from elsewhere against the registries.
"""
