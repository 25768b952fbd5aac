"""Where a candidate runs and what is measured there: LiteRT on the CI machine's CPU today.

Each target measures a built candidate and gives named figures its checks read.
"""
