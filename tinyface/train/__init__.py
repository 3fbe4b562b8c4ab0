"""Models: the teacher, student architectures, distillation, pruning, quantization."""

from tinyface.console import quiet_tensorflow as _quiet

_quiet()  # before any module of this package imports TensorFlow: no library noise on stderr
