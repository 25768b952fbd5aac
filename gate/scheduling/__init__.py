"""Running many models: isolated worker processes with limits (run.py, worker.py) and the result cache."""
