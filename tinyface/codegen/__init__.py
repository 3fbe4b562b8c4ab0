"""Firmware code generation: the model as a C array, model_settings.h, the op resolver, the
arena plan, the budget check and the PlatformIO project rendered from firmware/ templates."""

from tinyface.codegen.project import BANNER, FirmwareProject, generate_project

__all__ = ["BANNER", "FirmwareProject", "generate_project"]
