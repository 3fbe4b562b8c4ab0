"""Models: the teacher, student architectures, distillation, pruning, quantization."""
