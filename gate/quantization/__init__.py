"""Quantization: the methods that turn the float model into .tflite candidates.

base.py is what a method is, methods.py the registry (METHODS) that names each module's builder.
"""
