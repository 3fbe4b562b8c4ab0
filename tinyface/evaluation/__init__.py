"""Evaluation: the metrics (one pair sampler family, one enrolled/probe/stranger split), the
API of `tinyface evaluate` (any model on any folder of faces), and the build's report and
model card."""
