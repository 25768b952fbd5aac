"""CI glue: which models a change touches (plan), merging shards, GitHub's API and annotations."""
