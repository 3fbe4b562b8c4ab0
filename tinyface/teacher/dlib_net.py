"""dlib's face ResNet, read from its own model file and run in TensorFlow.

dlib-bin is built without BLAS, so its network runs at about 170 ms per chip per core on
this project's machines; the same network in TensorFlow (oneDNN, batched) takes about 4 ms
per chip on 2 cores. That is the difference between a teacher pass that takes hours and
one that takes minutes, so the teacher runs here and dlib remains the reference it is
tested against (``tests/train/test_dlib_net.py``: same embeddings to float round-off).

The file is dlib's binary serialization (``dlib/dnn/core.h``, ``layers.h``, ``tensor.h``):
each layer's details follow its name string (``con_4``, ``affine_``, ``fc_2`` ...) and the
layers appear innermost first, i.e. in forward order. Integers are packed as one control
byte (low nibble: byte count, bit 7: sign) and that many little-endian bytes; floats as a
packed mantissa and exponent; tensors as a version, four packed dimensions (n, k, nr, nc)
and raw little-endian float32 values. Only the weights are read from the file: the graph
is the published ``anet_type`` of dlib's ``face_recognition.cpp`` (the counts and shapes
read from the file are checked against it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyface.errors import ModelError

# anet_type: (filters, residual blocks, first block halves the resolution), input side first.
STAGES = ((32, 3, False), (64, 4, True), (128, 3, True), (256, 3, True), (256, 1, True))
CHIP_SIZE = 150


class DlibFormatError(ModelError):
    """The model file is not the dlib face ResNet this module knows."""

    def __init__(self, message: str):
        super().__init__(f"the teacher's model file is unusable: {message}",
                         hint="reinstall it: pip install --force-reinstall face-recognition-models")


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def int(self) -> int:
        ctrl = self.data[self.pos]
        size = ctrl & 0x0F
        value = int.from_bytes(self.data[self.pos + 1:self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if ctrl & 0x80 else value

    def float(self) -> float:
        mantissa = self.int()
        return float(mantissa) * 2.0 ** self.int()

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise DlibFormatError(f"unknown tensor version at byte {self.pos}")
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values.reshape(shape)

    def seek_name(self, name: str) -> None:
        """Move past the next serialized string ``name``."""
        raw = name.encode()
        marker = bytes([1, len(raw)]) + raw
        at = self.data.find(marker, self.pos)
        if at < 0:
            raise DlibFormatError(f"no {name!r} layer after byte {self.pos}")
        self.pos = at + len(marker)


@dataclass
class DlibWeights:
    """Everything the forward pass needs, in forward order."""

    mean_rgb: tuple[float, float, float]
    convs: list[tuple[np.ndarray, np.ndarray, int]]  # (kernel HWIO, bias, stride)
    affines: list[tuple[np.ndarray, np.ndarray]]  # (gamma, beta) per channel
    fc: np.ndarray  # (256, 128), no bias


def read_weights(path) -> DlibWeights:
    """Read dlib_face_recognition_resnet_model_v1.dat. Raises DlibFormatError."""
    with open(path, "rb") as f:
        data = f.read()
    try:
        return _parse(_Reader(data))
    except (IndexError, ValueError) as exc:  # cut short: a read ran past the end
        raise DlibFormatError(f"it ends early ({exc})") from None


def _parse(r: _Reader) -> DlibWeights:
    r.seek_name("input_rgb_image_sized")
    mean_rgb = (r.float(), r.float(), r.float())
    if (r.int(), r.int()) != (CHIP_SIZE, CHIP_SIZE):
        raise DlibFormatError("the input is not 150x150")
    n_convs = 1 + 2 * sum(blocks for _, blocks, _ in STAGES)
    convs, affines = [], []
    for _ in range(n_convs):
        r.seek_name("con_4")
        params = r.tensor().ravel()
        filters, rows, cols, stride_y, stride_x, pad_y, pad_x = (r.int() for _ in range(7))
        per_filter = rows * cols
        channels_in = (params.size - filters) // (filters * per_filter)
        if channels_in * filters * per_filter + filters != params.size or stride_y != stride_x:
            raise DlibFormatError(f"unexpected convolution layout ({filters} filters, {params.size} values)")
        if pad_y != (rows // 2 if stride_y == 1 else 0) or pad_x != pad_y:
            raise DlibFormatError(f"unexpected convolution padding {pad_y}x{pad_x}")
        kernel = params[:-filters].reshape(filters, channels_in, rows, cols).transpose(2, 3, 1, 0)
        convs.append((np.ascontiguousarray(kernel), params[-filters:].copy(), stride_y))
        r.seek_name("affine_")
        ab = r.tensor().ravel()
        affines.append((ab[:ab.size // 2].copy(), ab[ab.size // 2:].copy()))
    r.seek_name("fc_2")
    outputs, inputs = r.int(), r.int()
    fc = r.tensor().reshape(inputs, outputs)
    expected = [32] + [f for f, blocks, _ in STAGES for _ in range(2 * blocks)]
    if [c[0].shape[-1] for c in convs] != expected or fc.shape != (256, 128):
        raise DlibFormatError("the layers do not match dlib's face ResNet (anet_type)")
    return DlibWeights(mean_rgb, convs, affines, fc)


def build_model(weights: DlibWeights):
    """A Keras model: uint8-valued RGB chips (N, 150, 150, 3) -> the raw 128-D descriptor.

    Matches dlib's layer semantics: convolutions with stride 2 take no padding ("valid"),
    those with stride 1 pad by half the kernel ("same"); a residual sum of tensors of
    different sizes zero-pads the smaller one at the end (bottom, right, last channels),
    as dlib's ``add_prev`` does (the 8x8 -> 4x4 stage adds a 3x3 block output to a 4x4
    pooled shortcut).
    """
    import tensorflow as tf

    layers = tf.keras.layers
    convs, affines = iter(weights.convs), iter(weights.affines)
    mean = tf.constant(weights.mean_rgb, tf.float32)

    def conv_affine(x, relu: bool):
        kernel, bias, stride = next(convs)
        gamma, beta = next(affines)
        conv = layers.Conv2D(kernel.shape[-1], kernel.shape[0], strides=stride,
                             padding="same" if stride == 1 else "valid")
        x = conv(x)
        conv.set_weights([kernel * gamma, bias * gamma + beta])  # affine folded into the conv
        return layers.ReLU()(x) if relu else x

    def pad_to(x, rows: int, channels: int):
        extra_rows, extra_channels = rows - x.shape[1], channels - x.shape[-1]
        if extra_rows == 0 and extra_channels == 0:
            return x
        return layers.Lambda(lambda t: tf.pad(t, [[0, 0], [0, extra_rows], [0, extra_rows], [0, extra_channels]]))(x)

    chips = tf.keras.Input((CHIP_SIZE, CHIP_SIZE, 3))
    x = layers.Lambda(lambda t: (t - mean) / 256.0)(chips)
    x = conv_affine(x, relu=True)
    x = layers.MaxPool2D(3, 2)(x)
    for _filters, blocks, down in STAGES:
        for block in range(blocks):
            shortcut = layers.AveragePooling2D(2, 2)(x) if down and block == 0 else x
            y = conv_affine(conv_affine(x, relu=True), relu=False)
            rows, channels = max(y.shape[1], shortcut.shape[1]), max(y.shape[-1], shortcut.shape[-1])
            x = layers.ReLU()(layers.Add()([pad_to(y, rows, channels), pad_to(shortcut, rows, channels)]))
    x = layers.GlobalAveragePooling2D()(x)
    fc = layers.Dense(weights.fc.shape[1], use_bias=False)
    out = fc(x)
    fc.set_weights([weights.fc])
    return tf.keras.Model(chips, out, name="dlib_face_resnet")
