"""Quantization-aware training: the parent's side (job.py), the training process (train.py)
and the Keras 3 -> tf-keras rebuild it needs (rebuild.py, annotate.py).
"""
