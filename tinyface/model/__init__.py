"""The int8 model artifact and everything that reads it, without TensorFlow at import time.

- :mod:`tinyface.model.bundle`: ``model.tflite`` + ``model.json`` (the one reader, sha256
  checked) and the one resolver of "the model for this board".
- :mod:`tinyface.model.graph`: the one flatbuffer reader (ops, shapes, MACs, I/O quantization).
- :mod:`tinyface.model.runtime`: the TFLite and TFLM interpreters.
- :mod:`tinyface.model.embedder`: the one int8 embedder (quantize, run, dequantize, normalise).
- :mod:`tinyface.model.keras_io`: the float student's ``.keras`` file (save, load, embed).
"""
