"""Student architectures: small CNNs built only from ops TFLM supports and ESP-NN
accelerates (CONV_2D, DEPTHWISE_CONV_2D, ADD, FULLY_CONNECTED, MEAN, RESHAPE).

``dsnet`` is a MobileFaceNet-style network: a strided stem, depthwise-separable blocks
(inverted residuals where shapes allow an ADD), and a global depthwise convolution (GDC)
head instead of global average pooling: faces are aligned, so *where* a feature is
matters, and GDC learns a per-position weighting at almost no cost. ``tinycnn`` is the
plain baseline (conv blocks + global average pooling).

Architectures are selected by name; width scales every channel count. Batch norm is
folded into the convolutions by the TFLite converter.

With ``branches`` the convolutions are trained over-parameterised (MobileOne, Vasu et al., CVPR
2023): each one as ``branches`` parallel convolutions with their own batch norm, plus a 1x1
"scale" branch next to a 3x3 one and a batch-norm-only "identity" branch where the shapes allow,
summed. Every branch is linear in inference mode, so ``fuse`` folds them into the single
convolution of the plain network: the board runs the same network at the same cost.
"""

from __future__ import annotations

from tinyface.config import DSNET_REPEATS

# dsnet stages' output channels (at width 1). Each stage halves the resolution with a
# depthwise-separable block, then repeats residual depthwise-separable blocks (student.repeats
# blocks in all, DSNET_REPEATS by default). Expansion layers (MobileNetV2) are left out: at
# 24x24 and 12x12 they cost more MACs than the whole 2 M budget allows.
DSNET_CHANNELS = (32, 64, 128)
DSNET_STEM = 16
DSNET_HEAD = 256
# dsnet_fc: units of the hidden layer over the flattened last feature map (256 at width 0.75)
DSNET_FC_HIDDEN = 336


# Batch-norm moving statistics converge in ~1/(1 - momentum) steps; Keras' 0.99 needs
# hundreds, more than a --quick build takes, and an unconverged final BN collapses every
# embedding onto one direction (thresholds of 0.9998 were seen). 0.9 converges in tens.
BN_MOMENTUM = 0.9


def _ch(c: float, width: float) -> int:
    return max(8, int(round(c * width / 8.0)) * 8)


def build_student(arch: str, input_shape: tuple[int, int, int], embedding_dim: int = 128, width: float = 1.0,
                  n_classes: int = 0, branches: int = 0, repeats=DSNET_REPEATS):
    """Build a Keras (tf_keras) student.

    ``repeats``: the dsnet architectures' blocks per stage (student.repeats). ``branches`` > 0
    builds the over-parameterised training form (module docstring); ``fuse`` turns it into the
    plain one (``branches`` = 0) with the same outputs.

    Returns:
        (embedding_model, train_model): the first maps an image in [-1, 1) to the embedding;
        the second adds an identity-classification head (when ``n_classes``), used only in training.
    """
    import tf_keras as keras
    from tf_keras import layers

    builders = {"dsnet": _dsnet, "dsnet_mlp": _dsnet_mlp, "dsnet_fc": _dsnet_fc, "tinycnn": _tinycnn}
    if arch not in builders:
        from tinyface.errors import ConfigError

        raise ConfigError(f"unknown student architecture {arch!r}", hint=f"known: {', '.join(builders)}")
    inp = keras.Input(input_shape, name="face")
    emb = builders[arch](inp, embedding_dim, width, _Ops(layers, branches), tuple(repeats))
    model = keras.Model(inp, emb, name=f"{arch}_w{width:g}_{input_shape[0]}x{input_shape[1]}x{input_shape[2]}")
    if not n_classes:
        return model, model
    logits = layers.Dense(n_classes, use_bias=False, name="identity_logits")(emb)
    return model, keras.Model(inp, [emb, logits], name=model.name + "_train")


class _Ops:
    """Keras' layers module, and how many branches each convolution trains with (0: plain)."""

    def __init__(self, layers, branches: int = 0):
        self.layers, self.branches = layers, branches

    def __getattr__(self, name):
        return getattr(self.layers, name)


def _conv_bn(x, filters, kernel, stride, layers, name, act=True):
    x = _linear_conv(x, filters, kernel, stride, layers, f"{name}_conv", f"{name}_bn", depthwise=False)
    return layers.ReLU(6.0, name=f"{name}_relu")(x) if act else x


def _dw_bn(x, stride, layers, name, kernel=3):
    x = _linear_conv(x, 0, kernel, stride, layers, f"{name}_dw", f"{name}_dwbn", depthwise=True)
    return layers.ReLU(6.0, name=f"{name}_dwrelu")(x)


def _linear_conv(x, filters, kernel, stride, ops, conv_name, bn_name, depthwise: bool):
    """A convolution and its batch norm; trained over-parameterised when ``ops.branches``.

    The plain layers are named ``conv_name`` and ``bn_name``; a branched one's layers are
    ``{conv_name}_b{i}`` (each with ``_bn``), ``{conv_name}_scale`` (1x1, with ``_bn``) and
    ``{conv_name}_id_bn``, summed by ``{conv_name}_sum``: ``fuse`` relies on these names.
    """
    def conv(size, name):
        if depthwise:
            return ops.DepthwiseConv2D(size, strides=stride, padding="same", use_bias=False, name=name)
        return ops.Conv2D(filters, size, strides=stride, padding="same", use_bias=False, name=name)

    def bn(name):
        return ops.BatchNormalization(momentum=BN_MOMENTUM, name=name)

    if not getattr(ops, "branches", 0):
        return bn(bn_name)(conv(kernel, conv_name)(x))
    outs = [bn(f"{conv_name}_b{i}_bn")(conv(kernel, f"{conv_name}_b{i}")(x)) for i in range(ops.branches)]
    # a strided 1x1 samples another pixel than the 3x3's centre under "same" padding: stride 1 only
    if kernel > 1 and stride == 1:
        outs.append(bn(f"{conv_name}_scale_bn")(conv(1, f"{conv_name}_scale")(x)))
    if stride == 1 and (depthwise or x.shape[-1] == filters):
        outs.append(bn(f"{conv_name}_id_bn")(x))
    return ops.Add(name=f"{conv_name}_sum")(outs) if len(outs) > 1 else outs[0]


def fuse(branched, plain, sample) -> float:
    """Fold every branched convolution of ``branched`` into ``plain``'s single one (in place).

    ``plain`` is the same architecture built with ``branches=0``; ``sample`` is a batch of
    inputs ([-1, 1) floats). The fused convolution's batch norm gets the sample's statistics
    of its output as moving mean and variance and the scale and offset that undo them, so it
    is exact in inference mode and close to it in training mode (pruning fine-tunes it next).

    Returns:
        the largest absolute difference of the two models' embeddings on ``sample``.
    """
    import numpy as np
    import tf_keras as keras
    from tf_keras import layers

    names = {layer.name for layer in branched.layers}
    fused = []
    for layer in plain.layers:
        if f"{layer.name}_b0" in names:
            depthwise = isinstance(layer, layers.DepthwiseConv2D)  # not a Conv2D in Keras
            kernel, bias = _fold_branches(branched, layer.name, layer.get_weights()[0].shape, depthwise)
            layer.set_weights([kernel])
            fused.append((layer, _bn_after(plain, layer), bias))
    folded = {bn_layer.name for _, bn_layer, _ in fused}
    for layer in plain.layers:
        if layer.weights and f"{layer.name}_b0" not in names and layer.name not in folded:
            # trained as it is (get_layer raises if the two models are not one architecture)
            layer.set_weights(branched.get_layer(layer.name).get_weights())
    for _, bn_layer, bias in fused:  # exact already; the statistics below keep it exact
        ones = np.ones_like(bias)
        bn_layer.set_weights([ones, bias, ones * 0, ones - bn_layer.epsilon])
    probe = keras.Model(plain.input, [conv.output for conv, _, _ in fused])
    outputs = probe.predict(sample, verbose=0, batch_size=256) if fused else []
    for (_, bn_layer, bias), y in zip(fused, outputs if len(fused) != 1 else [outputs], strict=True):
        axes = tuple(range(y.ndim - 1))
        mean, var = y.mean(axes), y.var(axes)
        bn_layer.set_weights([np.sqrt(var + bn_layer.epsilon), mean + bias, mean, var])
    return float(np.abs(branched.predict(sample, verbose=0, batch_size=256)
                        - plain.predict(sample, verbose=0, batch_size=256)).max())


def _bn_after(model, conv_layer):
    """The batch norm that takes ``conv_layer``'s output in ``model``."""
    from tf_keras import layers

    for node in conv_layer.outbound_nodes:
        if isinstance(node.outbound_layer, layers.BatchNormalization):
            return node.outbound_layer
    raise ValueError(f"no batch norm after {conv_layer.name}")


def _fold_branches(model, name: str, shape, depthwise: bool):
    """The kernel and bias of the sum of ``name``'s branches in inference mode."""
    import numpy as np

    kh, kw, cin, cout = shape
    kernel, bias = np.zeros(shape, np.float32), np.zeros(cin if depthwise else cout, np.float32)

    def add(k, bn_name):
        gamma, beta, mean, var = (np.asarray(w) for w in model.get_layer(bn_name).get_weights())
        scale = gamma / np.sqrt(var + model.get_layer(bn_name).epsilon)
        k = k * (scale[None, None, :, None] if depthwise else scale[None, None, None, :])
        top, left = (kh - k.shape[0]) // 2, (kw - k.shape[1]) // 2
        kernel[top:top + k.shape[0], left:left + k.shape[1]] += k
        bias[:] += beta - mean * scale

    i = 0
    while _has(model, f"{name}_b{i}"):
        add(model.get_layer(f"{name}_b{i}").get_weights()[0], f"{name}_b{i}_bn")
        i += 1
    if _has(model, f"{name}_scale"):
        add(model.get_layer(f"{name}_scale").get_weights()[0], f"{name}_scale_bn")
    if _has(model, f"{name}_id_bn"):
        eye = np.ones((1, 1, cin, 1), np.float32) if depthwise else np.eye(cin, dtype=np.float32)[None, None]
        add(eye, f"{name}_id_bn")
    return kernel, bias


def _has(model, name: str) -> bool:
    try:
        model.get_layer(name)
    except ValueError:
        return False
    return True


def _dsnet_mlp(inp, embedding_dim, width, layers, repeats):
    return _dsnet(inp, embedding_dim, width, layers, repeats, mlp_units=_ch(512, width))


def _dsnet_fc(inp, embedding_dim, width, layers, repeats):
    """dsnet's trunk, then a fully-connected layer over the whole flattened last feature map
    (every position and channel its own weight: ArcFace's "E" output) instead of the 1x1 head
    and GDC; at width 0.75 and 64x64 it costs what they and dsnet_mlp's hidden layer cost."""
    x = layers.Flatten(name="flatten")(_dsnet_trunk(inp, width, layers, repeats))
    return _embedding(x, embedding_dim, layers, _ch(DSNET_FC_HIDDEN, width), "fc")


def _dsnet(inp, embedding_dim, width, layers, repeats, mlp_units: int = 0):
    x = _dsnet_trunk(inp, width, layers, repeats)
    x = _conv_bn(x, _ch(DSNET_HEAD, width), 1, 1, layers, "head")
    # global depthwise conv: one learned weight per position and channel
    h, w = x.shape[1], x.shape[2]
    x = layers.DepthwiseConv2D((h, w), padding="valid", use_bias=False, name="gdc")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, name="gdc_bn")(x)
    x = layers.Flatten(name="flatten")(x)
    # capacity is cheap in MACs at 1x1: dsnet_mlp's hidden layer costs 2 x 512 x 256 MACs (~0.2 M)
    return _embedding(x, embedding_dim, layers, mlp_units, "mlp")


def _embedding(x, embedding_dim, layers, hidden_units: int, hidden_name: str):
    """A flat feature vector to the embedding: an optional hidden layer (``hidden_name``, batch
    norm, ReLU6), then the linear embedding with batch norm."""
    if hidden_units:
        x = layers.Dense(hidden_units, use_bias=False, name=hidden_name)(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"{hidden_name}_bn")(x)
        x = layers.ReLU(6.0, name=f"{hidden_name}_relu")(x)
    x = layers.Dense(embedding_dim, use_bias=False, name="embedding")(x)
    return layers.BatchNormalization(momentum=BN_MOMENTUM, name="embedding_bn")(x)


def _dsnet_trunk(inp, width, layers, repeats):
    """The stem and the depthwise-separable stages: (H/16, W/16, channels of the last stage)."""
    x = _conv_bn(inp, _ch(DSNET_STEM, width), 3, 2, layers, "stem")
    in_ch = _ch(DSNET_STEM, width)
    block = 0
    assert len(repeats) == len(DSNET_CHANNELS), repeats  # config validates it for users
    for out, blocks in zip(DSNET_CHANNELS, repeats, strict=True):
        out_ch = _ch(out, width)
        for r in range(blocks):
            stride = 2 if r == 0 else 1
            name = f"b{block}"
            y = _dw_bn(x, stride, layers, name)
            y = _conv_bn(y, out_ch, 1, 1, layers, f"{name}_pw", act=stride == 1 and in_ch == out_ch)
            if stride == 1 and in_ch == out_ch:
                x = layers.Add(name=f"{name}_add")([x, y])
            else:
                x = layers.ReLU(6.0, name=f"{name}_relu")(y)
            in_ch = out_ch
            block += 1
    return x


def _tinycnn(inp, embedding_dim, width, layers, repeats):  # no stages: repeats unused
    x = inp
    for i, c in enumerate((16, 32, 64, 128)):
        x = _conv_bn(x, _ch(c, width), 3, 2, layers, f"c{i}")
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    return layers.Dense(embedding_dim, name="embedding")(x)


def keras_macs(model) -> int:
    """Multiply-accumulates of one inference, counted from the Keras layers (the int8 graph
    count in tinyface.model.graph is authoritative; this one is for design and search)."""
    from tf_keras import layers

    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output_shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output_shape
            kh, kw = layer.kernel_size
            total += h * w * c * kh * kw * layer.input_shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.input_shape[-1] * layer.units
        elif isinstance(layer, layers.Add):
            total += int(layer.output_shape[1] * layer.output_shape[2] * layer.output_shape[3])
    return int(total)
