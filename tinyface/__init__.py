"""tinyface: embedded face recognition for the ESP32 family.

Importing the package is cheap: TensorFlow, dlib and TFLM are imported only by the
modules that train, align or run models.
"""

__version__ = "0.1.0"
