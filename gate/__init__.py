"""gate: a release gate for on-device TensorFlow Lite models.

Importing gate never imports TensorFlow: only the stages that convert, load or
run a model do, inside the per-model worker process.
"""

__version__ = "0.1.0"
