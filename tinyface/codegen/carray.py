"""Bytes as C source, the way tflite-micro's generate_cc_arrays.py does it: a header with
``extern const unsigned char NAME[]`` and its length, a .cc with ``alignas(16)`` const data
(TFLM needs the flatbuffer 16-byte aligned; const keeps it in flash on the ESP32)."""

from __future__ import annotations

BYTES_PER_ROW = 12


def hex_rows(data: bytes, per_row: int = BYTES_PER_ROW) -> list[str]:
    """``data`` as rows of ``0x..,`` literals (every row ends with a comma)."""
    return [", ".join(f"0x{b:02x}" for b in data[i:i + per_row]) + ","
            for i in range(0, len(data), per_row)]


def c_bytes_initializer(data: bytes) -> str:
    """``0x12, 0x34, ...`` on one line (for short arrays such as a hash)."""
    return ", ".join(f"0x{b:02x}" for b in data)


def c_float(value: float) -> str:
    """A float32 literal that reads back as the same float32 (9 significant digits)."""
    text = f"{float(value):.9g}"
    if "e" not in text and "." not in text and "inf" not in text and "nan" not in text:
        text += ".0"
    return text + "f"


def c_string(text: str) -> str:
    """The body of a C string literal for ``text`` (UTF-8; non-ASCII and quotes escaped as octal)."""
    out = []
    for byte in text.encode("utf-8"):
        ch = chr(byte)
        out.append(ch if 0x20 <= byte < 0x7F and ch not in '"\\?' else f"\\{byte:03o}")
    return "".join(out)


def render_c_array(name: str, data: bytes, banner: str) -> tuple[str, str]:
    """A standalone ``(header, source)`` pair for ``data`` named ``name`` (the firmware's
    model_data.h/.cc are the same shape, rendered from firmware/src templates)."""
    guard = f"{name.upper()}_H"
    header = (f"// {banner}\n#ifndef {guard}\n#define {guard}\n\n"
              f"extern const unsigned char {name}[];\nextern const unsigned int {name}_len;\n\n#endif  // {guard}\n")
    rows = "\n".join(f"    {row}" for row in hex_rows(data))
    source = (f"// {banner}\n#include \"{name}.h\"\n\nalignas(16) const unsigned char {name}[] = {{\n{rows}\n}};\n"
              f"const unsigned int {name}_len = {len(data)};\n")
    return header, source
