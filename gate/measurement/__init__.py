"""Target-independent measurement: confidence intervals of a metric change (paired bootstrap)."""
