"""Face alignment: dlib's frontal face detector, its 5-point landmarks, and a similarity
transform onto a square chip (dlib's face-chip convention, the one its ResNet was trained on).

How a face is found, in order (the first that succeeds wins; ``Alignment.method`` records it):

1. ``detector``: dlib's HOG detector, retried on the image upsampled; the 5-point model on
   the largest face. Exactly the original aligner, so its results (and every cache entry and
   released model made from them) are unchanged.
2. ``detector+equalised``: the same detector on the luminance after histogram
   equalisation (dark, low-contrast and unevenly lit photos).
3. ``landmarks-whole-frame``: for tight face crops (the face fills the frame, so the detector,
   which needs some context, finds nothing): the 5-point model run on boxes around the whole
   frame, refined from its own landmarks, then confirmed by the detector on the aligned chip.
4. ``cnn``: dlib's CNN (MMOD) face detector, on a copy at most ``CNN_MAX_SIDE`` pixels wide
   (it runs without BLAS here: about 0.4 s for a 250x250 photo, 10x the HOG detector).
5. ``fallback``: nothing found; a centered crop (below). ``Alignment.usable`` is False: the
   gallery and ``flash --enroll`` refuse such images; training counts and reports them.

Landmarks from steps 2-4 must pass ``implausible()`` (eye distance, eye-nose geometry,
inside the image) before they are trusted. An underexposed face (``underexposed``: judged on
the face region) has its chips cut from a brightened copy (``brighten``); when a step 2-4 found
it, its landmarks are refined once on that copy.

Images larger than ``DETECT_MAX_PIXELS`` are searched on a shrunk copy and the face box is
mapped back: the landmarks come from the full image (a 144-megapixel photo otherwise takes a
minute and gigabytes to search, upsampled).

The centered-crop fallback: a square of side ``FALLBACK_SIDE`` x the image's shorter side,
centered at (0.5 w, ``FALLBACK_CENTER_Y`` h). On LFW's deep-funneled 250x250 images this
matches where the detector puts the face chip (measured: 120 px square centered near
(125, 138)). Fallbacks are counted and reported, never hidden.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

ALIGNER_VERSION = "dlib-hog-5pt-v1"
FALLBACK_SIDE = 0.48
FALLBACK_CENTER_Y = 0.55
N_LANDMARKS = 5
# Search images above this many pixels on a shrunk copy (4 MP: a face the detector can find
# upsampled is >= 40 px there, i.e. >= 100 px in a 24 MP photo).
DETECT_MAX_PIXELS = 4_000_000
CNN_MAX_SIDE = 400
# The CNN runs only on an image at least this many pixels on its shorter side, upsampling counted:
# it finds no face under about 80 px (measured on LFW faces: 40 px upsampled once is found, 32 px is
# not), and on an image a few pixels across (2x2, or a 40x10000 panorama shrunk to CNN_MAX_SIDE) dlib
# fails with a RuntimeError and can corrupt the heap, so that the process aborts later.
CNN_MIN_SIDE = 64
CNN_BOX_WIDEN, CNN_BOX_DROP = 1.135, 0.06

# How a face was found; the code is the last value of Alignment.to_array(). "detector" is 1.0,
# as before this list existed, so cached landmarks of found faces are byte-identical. A cached
# 0.0 (the old "not found") is re-examined by the rescue steps (see faces.prepare_faces).
METHODS = {"detector": 1.0, "detector+equalised": 2.0, "landmarks-whole-frame": 3.0, "cnn": 4.0, "chip": 5.0,
           "fallback": -1.0}
_METHOD_OF_CODE = {v: k for k, v in METHODS.items()}
LEGACY_NOT_FOUND = 0.0
FALLBACK = "fallback"
# An image whose face was underexposed (its chips are cut brightened, see underexposed) is
# recorded by one more value before the method's code; other images' arrays are as before.
NORMALISED_MARK = 1.0


@dataclass
class Alignment:
    """Five landmarks (x, y) in source pixels, whether a face was found, and how.

    ``detected`` (= ``usable``) is True when the landmarks locate a face; ``method`` is one of
    ``METHODS`` ("fallback" when nothing was found and the centered crop is used);
    ``normalised``: the face is underexposed, so its chips are cut from a brightened copy (a
    record for reports: ``cut_chip`` decides from the pixels, the same way).
    """

    landmarks: np.ndarray  # (5, 2) float32; zeros when not detected
    detected: bool
    method: str = ""
    normalised: bool = False

    def __post_init__(self):
        if not self.method:
            self.method = "detector" if self.detected else FALLBACK

    @property
    def usable(self) -> bool:
        """A face was found (by any method): the crop shows an aligned face."""
        return self.detected

    def to_array(self) -> np.ndarray:
        code = METHODS[self.method] if self.detected or self.method == FALLBACK else METHODS[FALLBACK]
        marks = [NORMALISED_MARK, code] if self.normalised else [code]
        return np.concatenate([self.landmarks.reshape(-1), marks]).astype(np.float32)

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "Alignment":
        arr = np.asarray(arr, dtype=np.float32)
        code = float(arr[-1])
        method = _METHOD_OF_CODE.get(code, FALLBACK)
        normalised = arr.size == 2 * N_LANDMARKS + 2 and float(arr[-2]) == NORMALISED_MARK
        return cls(arr[: 2 * N_LANDMARKS].reshape(N_LANDMARKS, 2), method != FALLBACK, method, normalised)


# dlib's 5-point face template on the unit square (get_face_chip_details in
# dlib/image_transforms/interpolation.h), in the 5-point predictor's landmark order.
TEMPLATE_5PT = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                         [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                         [0.4901123135679, 0.6277975316475]])


def check_photo(rgb) -> np.ndarray:
    """``rgb`` if it is a photo the aligner and ``cut_chip`` take: a uint8 array (H, W, 3) in RGB
    (or (H, W) gray), at least a pixel on each side; ``tinyface.data.dataset.read_image`` reads one.

    Raises:
        DataError: anything else (a path, a PIL image, floats, RGBA, one channel, an empty array),
            which PIL and dlib would refuse deep inside, or mis-read.
    """
    from tinyface.errors import DataError

    hint = "read it with tinyface.data.dataset.read_image(path), or np.asarray(pil_image.convert('RGB'))"
    if not isinstance(rgb, np.ndarray):
        raise DataError(f"a photo must be a numpy array (H, W, 3), got {type(rgb).__name__}", hint=hint)
    if rgb.dtype != np.uint8:
        raise DataError(f"a photo must be uint8 pixels (0-255), got an array of {rgb.dtype}", hint=hint)
    if not (rgb.ndim == 2 or rgb.ndim == 3 and rgb.shape[2] == 3) or 0 in rgb.shape[:2]:
        raise DataError(f"a photo must be RGB (H, W, 3) or gray (H, W), got shape {rgb.shape}", hint=hint)
    return rgb


def chip_landmarks(width: int, height: int, padding: float) -> np.ndarray:
    """Where the 5 landmarks lie in a dlib face chip of ``width`` x ``height`` pixels cut
    with ``padding``: the template, as get_face_chip_details places it."""
    unit = (padding + TEMPLATE_5PT) / (1 + 2 * padding)
    return (unit * np.array([width, height])).astype(np.float32)


class ChipAligner:
    """The "aligner" of images that are already dlib face chips (FairFace's are, at padding
    0.25): the landmarks are the template's, so no detector runs and every image is a face.
    Constructed like Aligner (the upsample argument is ignored)."""

    def __init__(self, padding: float, upsample: int = 0):
        self.padding = padding

    def detect(self, rgb: np.ndarray) -> Alignment:
        h, w = check_photo(rgb).shape[:2]
        return Alignment(chip_landmarks(w, h, self.padding), True, "chip")  # never brightened (cut_chip)


def is_legacy_not_found(arr: np.ndarray) -> bool:
    """A landmark array cached before the rescue steps existed, for an image with no face found."""
    return float(np.asarray(arr)[-1]) == LEGACY_NOT_FOUND


_models_lock = threading.Lock()
_models: dict[str, object] = {}


def dlib_models():
    """dlib's frontal face detector and 5-point landmark predictor (face_recognition_models'),
    with which an Aligner finds faces and their landmarks (the rescue steps' CNN detector aside),
    loaded once per process: ``(detector, predictor)``."""
    with _models_lock:
        if not _models:
            import dlib
            import face_recognition_models as frm

            _models["detector"] = dlib.get_frontal_face_detector()
            _models["predictor"] = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
        return _models["detector"], _models["predictor"]


def _cnn_detector():
    with _models_lock:
        if "cnn" not in _models:
            import dlib
            import face_recognition_models as frm

            _models["cnn"] = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
        return _models["cnn"]


def _points(shape) -> np.ndarray:
    return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)


def _eye_frame(landmarks: np.ndarray):
    """Eye center, interocular distance, the unit vector along the eyes (pointing +x) and the
    one across them (pointing down the face)."""
    pts = np.asarray(landmarks, np.float64)
    e1, e2 = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    d = float(np.linalg.norm(e1 - e2))
    u = (e1 - e2) / max(d, 1e-9)
    if u[0] < 0:
        u = -u
    return (e1 + e2) / 2, d, u, np.array([-u[1], u[0]])


# Plausible 5-point geometry, from dlib's detections on LFW training people (1st-99th
# percentiles, widened): eye width / eye distance, nose below / beside the eye center.
EYE_WIDTH_RANGE = (0.2, 0.65)
NOSE_BELOW_RANGE = (0.35, 1.4)
NOSE_BESIDE_MAX = 0.6
MAX_ROLL_DEG = 45.0
MIN_EYE_DISTANCE_PX = 8.0


def implausible(landmarks: np.ndarray, image_hw: tuple[int, int]) -> str | None:
    """Why these 5 landmarks are not a face's (None when they are plausible).

    Checks: inside the image, eye distance at least ``MIN_EYE_DISTANCE_PX``, each eye's width
    and the two eyes' ratio, the nose below the eyes and between them, roll under
    ``MAX_ROLL_DEG``.
    """
    pts = np.asarray(landmarks, np.float64)
    h, w = image_hw
    if not np.isfinite(pts).all():
        return "landmarks not finite"
    if (pts[:, 0] < -1).any() or (pts[:, 1] < -1).any() or (pts[:, 0] > w).any() or (pts[:, 1] > h).any():
        return "landmarks outside the image"
    center, d, u, v = _eye_frame(pts)
    if d < MIN_EYE_DISTANCE_PX:
        return f"eyes {d:.1f} px apart"
    widths = [np.linalg.norm(pts[0] - pts[1]) / d, np.linalg.norm(pts[2] - pts[3]) / d]
    if not all(EYE_WIDTH_RANGE[0] <= x <= EYE_WIDTH_RANGE[1] for x in widths) or max(widths) > 2 * min(widths):
        return "eye widths out of proportion"
    nose = pts[4] - center
    if not NOSE_BELOW_RANGE[0] <= nose @ v / d <= NOSE_BELOW_RANGE[1] or abs(nose @ u / d) > NOSE_BESIDE_MAX:
        return "nose not below the eyes"
    roll = math.degrees(math.atan2(u[1], u[0]))
    if abs(roll) > MAX_ROLL_DEG:
        return f"face rolled {roll:.0f} degrees"
    return None


# The detector's box relative to its landmarks (medians over LFW training people): side =
# BOX_SIDE x eye distance, center = eye center + (BOX_ALONG u + BOX_ACROSS v) x eye distance.
BOX_SIDE, BOX_ALONG, BOX_ACROSS = 2.6, -0.09, 0.47
WHOLE_FRAME_BOXES = (1.0, 1.25, 1.5)  # box side / the frame's shorter side, for tight crops
WHOLE_FRAME_REFINE = 3


def box_from_landmarks(landmarks: np.ndarray):
    """The face box dlib's detector would give for these five landmarks (a dlib.rectangle)."""
    import dlib

    center, d, u, v = _eye_frame(landmarks)
    c = center + (BOX_ALONG * u + BOX_ACROSS * v) * d
    half = BOX_SIDE * d / 2
    return dlib.rectangle(int(round(c[0] - half)), int(round(c[1] - half)),
                          int(round(c[0] + half)), int(round(c[1] + half)))


# A photo is "dark" when the brightest 1% of its luminance is below this. No LFW training photo
# comes near (peopleDevTrain, 9,525 photos: the darkest reaches 124 over the whole photo, 106 in
# its face region), so LFW's alignment is untouched. Dark photos are searched equalised first:
# the detector often fires on the raw pixels, but the 5-point model misplaces the landmarks.
DARK_P99 = 80


def luminance(rgb: np.ndarray) -> np.ndarray:
    """An RGB photo's luminance as PIL's "L" computes it (uint8, H x W); a grey one as it is."""
    from PIL import Image

    return np.asarray(Image.fromarray(rgb).convert("L")) if rgb.ndim == 3 else rgb


def _sampled(image: np.ndarray) -> np.ndarray:
    """About a megapixel of evenly spread pixels (every pixel of an image up to that size):
    percentiles of a huge photo without converting it whole."""
    h, w = image.shape[:2]
    step = max(1, int(math.sqrt(h * w / 1_000_000)))
    return np.ascontiguousarray(image[::step, ::step])


def _luminance_sample(rgb: np.ndarray) -> np.ndarray:
    return luminance(_sampled(rgb))


def is_dark(rgb: np.ndarray) -> bool:
    """The brightest 1% of the photo's luminance (``_luminance_sample``) is below ``DARK_P99``."""
    return float(np.percentile(_luminance_sample(rgb), 99)) < DARK_P99


# Whether a face's chips are brightened is judged on the face itself: a FACE_REGION_PX square
# luminance chip of the landmarks' box (padding 0: brows to chin; the centered fallback square
# when no face was found), the same decision for every chip of an image (teacher, student, any
# size). The face is "underexposed" when the brightest 1% of that region is below DARK_P99. No
# LFW photo comes near (all 13,233, their cached landmarks: the darkest face region's 99th
# percentile is 96, 1 in 1,000 is below 111, the median is 196), so every LFW chip is
# byte-identical to before.
FACE_REGION_PX = 32
VERY_DARK_P995 = 40  # below this, a dark photo is mostly sensor noise: smooth it before the gain
DENOISE_SIGMA_PX = 1.0  # the Gaussian that smooths a very dark photo, in source pixels
BRIGHTEN_TO = 230


def face_luminance(rgb: np.ndarray, alignment: "Alignment") -> np.ndarray:
    """The face region's luminance: uint8 (FACE_REGION_PX, FACE_REGION_PX), the landmarks'
    box at padding 0 (the centered fallback square when no face was found)."""
    from PIL import Image

    matrix = chip_affine(alignment, rgb.shape[:2], FACE_REGION_PX, 0.0)
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    region = Image.fromarray(rgb).transform((FACE_REGION_PX, FACE_REGION_PX), Image.AFFINE,
                                            inverse.reshape(-1).tolist(), resample=Image.BILINEAR)
    return luminance(np.asarray(region))  # sampled first: a huge photo is never converted whole


def underexposed(rgb: np.ndarray, alignment: "Alignment") -> bool:
    """The brightest 1% of the face region (``face_luminance``) is below ``DARK_P99``: the
    face's chips are cut from a brightened copy (``brighten``)."""
    return rgb.ndim == 3 and float(np.percentile(face_luminance(rgb, alignment), 99)) < DARK_P99


def brighten(rgb: np.ndarray) -> np.ndarray:
    """An underexposed photo made usable for the embedders, which were trained on well-exposed
    faces: one gain on all channels that brings the brightest 0.5% of the photo's luminance to
    ``BRIGHTEN_TO`` (never below 1; colour and contrast kept: a linear gain is what a longer
    exposure gives); a very dark photo (below ``VERY_DARK_P995``) is first smoothed (a Gaussian
    of ``DENOISE_SIGMA_PX``) against the sensor noise the gain would amplify.

    On the very dark set of benchmarks/hard_faces.py with the true landmarks (teacher
    accuracy, benchmarks/dark_chips.py): 96.04% with the 3x3 median this replaced, 96.56% with
    the Gaussian; the alternatives tried are in docs/data.md. Smoothing costs the underexposed
    but not very dark photos accuracy, so they get the gain alone."""
    hi = float(np.percentile(_luminance_sample(rgb), 99.5))
    light = rgb.astype(np.float32)
    if hi < VERY_DARK_P995:  # smoothed in floats: the few grey levels left average to finer ones
        light = _gaussian_blur(light, DENOISE_SIGMA_PX)
        hi = float(np.percentile(_sampled(light) @ np.float32([0.299, 0.587, 0.114]), 99.5))
    gain = max(1.0, BRIGHTEN_TO / max(hi, 1.0))
    return np.clip(np.rint(light * gain), 0, 255).astype(np.uint8)


def _gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """A separable Gaussian over the first two axes of a float array (borders replicated)."""
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2).astype(np.float32)
    taps /= taps.sum()
    for axis in (0, 1):
        pad = [(0, 0)] * x.ndim
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="edge")
        n = x.shape[axis]
        x = sum(t * np.take(padded, np.arange(i, i + n), axis=axis) for i, t in enumerate(taps))
    return x


def equalise(rgb: np.ndarray, denoise: bool = False) -> np.ndarray:
    """Histogram-equalised luminance (uint8, H x W): contrast normalisation for dark,
    low-contrast or unevenly lit photos. ``denoise`` first smooths (3x3 median) the sensor
    noise that equalising a dark photo would amplify."""
    from PIL import Image, ImageFilter, ImageOps

    gray = Image.fromarray(luminance(rgb))
    if denoise:
        gray = gray.filter(ImageFilter.MedianFilter(3))
    return np.asarray(ImageOps.equalize(gray))


class Aligner:
    """Finds the 5 landmarks of the largest face and cuts aligned chips.

    Args:
        upsample: the detector's upsampled retry (data.detector_upsample).
        rescue: try the rescue steps (equalised, whole-frame landmarks, CNN) when the
            detector finds nothing; False gives the detector alone.
    """

    def __init__(self, upsample: int = 1, rescue: bool = True):
        self.upsample = upsample
        self.rescue = rescue

    def detect(self, rgb: np.ndarray) -> Alignment:
        """The largest face's landmarks, how they were found, and whether the face is
        underexposed (``underexposed``: its chips are cut brightened).

        Raises:
            DataError: ``rgb`` is not a photo (:func:`check_photo`).
        """
        alignment = self.find(rgb)
        alignment.normalised = underexposed(rgb, alignment)
        if alignment.normalised and alignment.detected and alignment.method != "detector":
            alignment = self._refine_brightened(rgb, alignment)
        return alignment

    @staticmethod
    def _refine_brightened(rgb: np.ndarray, alignment: Alignment) -> Alignment:
        """The 5-point model once more, on the brightened photo the chips are cut from, in
        the box its landmarks imply: the rescue steps found them on the equalised luminance,
        where noise moves them (on the very dark set of benchmarks/hard_faces.py, the teacher's
        accuracy: 96.46% with the landmarks as found, 97.19% refined; benchmarks/dark_chips.py).
        Kept only if plausible."""
        _, predictor = dlib_models()
        pts = _points(predictor(brighten(rgb), box_from_landmarks(alignment.landmarks)))
        if implausible(pts, rgb.shape[:2]) is not None:
            return alignment
        refined = Alignment(pts, True, alignment.method)
        refined.normalised = underexposed(rgb, refined)  # as cut_chip will decide from these landmarks
        return refined

    def find(self, rgb: np.ndarray) -> Alignment:
        """The largest face's landmarks as the detector (else, with ``rescue``, the rescue steps)
        finds them, and how: ``detect`` without its refinement of rescued landmarks on the
        brightened photo, and without deciding ``normalised`` (cut_chip decides it from the
        landmarks in any case). A face not found is the centered fallback (``detected`` False).

        Raises:
            DataError: ``rgb`` is not a photo (:func:`check_photo`).
        """
        check_photo(rgb)
        detector, predictor = dlib_models()
        h, w = rgb.shape[:2]
        scale = 1.0
        work = rgb
        if h * w > DETECT_MAX_PIXELS:  # search a shrunk copy; the landmarks come from the full image
            from PIL import Image

            scale = math.sqrt(DETECT_MAX_PIXELS / (h * w))
            work = np.asarray(Image.fromarray(rgb).resize((max(1, round(w * scale)), max(1, round(h * scale))),
                                                          Image.BOX))
        if self.rescue and is_dark(work):  # equalised first; the raw detector only if that fails
            rescued = self._rescue(work, scale, (h, w))
            if rescued.detected:
                return rescued
        rects = detector(work, 0)
        if len(rects) == 0 and self.upsample > 0:
            rects = detector(work, self.upsample)
        if len(rects) > 0:
            rect = max(rects, key=lambda r: r.area())
            if scale != 1.0:
                rect = _scale_rect(rect, 1 / scale)
            return Alignment(_points(predictor(rgb, rect)), True, "detector")
        if not self.rescue:
            return Alignment(np.zeros((N_LANDMARKS, 2), np.float32), False)
        return self._rescue(work, scale, (h, w))

    def _rescue(self, work: np.ndarray, scale: float, hw: tuple[int, int]) -> Alignment:
        h, w = hw
        for method, find in (("detector+equalised", self._equalised), ("landmarks-whole-frame", self._whole_frame),
                             ("cnn", self._cnn)):
            pts = find(work)
            if pts is not None:
                pts = pts / scale if scale != 1.0 else pts
                if implausible(pts, (h, w)) is None:
                    return Alignment(pts.astype(np.float32), True, method)
        return Alignment(np.zeros((N_LANDMARKS, 2), np.float32), False, FALLBACK)

    def _equalised(self, rgb: np.ndarray) -> np.ndarray | None:
        detector, predictor = dlib_models()
        gray = equalise(rgb, denoise=is_dark(rgb))
        rects = detector(gray, 0)
        if len(rects) == 0 and self.upsample > 0:
            rects = detector(gray, self.upsample)
        if len(rects) == 0:
            return None
        return _points(predictor(gray, max(rects, key=lambda r: r.area())))

    def _whole_frame(self, rgb: np.ndarray) -> np.ndarray | None:
        """The 5-point model on boxes around the whole frame, each refined from its own
        landmarks; kept only if the detector confirms a face on the chip they align."""
        import dlib

        _, predictor = dlib_models()
        gray = equalise(rgb, denoise=is_dark(rgb))
        h, w = rgb.shape[:2]
        for factor in WHOLE_FRAME_BOXES:
            half = factor * min(h, w) / 2
            rect = dlib.rectangle(int(w / 2 - half), int(h / 2 - half), int(w / 2 + half), int(h / 2 + half))
            pts = _points(predictor(gray, rect))
            for _ in range(WHOLE_FRAME_REFINE):
                if implausible(pts, (h, w)) is not None:
                    break
                pts = _points(predictor(gray, box_from_landmarks(pts)))
            if implausible(pts, (h, w)) is not None:
                continue
            confirmed = self._confirm_on_chip(gray, pts)
            if confirmed is not None:
                return confirmed
        return None

    def _confirm_on_chip(self, gray: np.ndarray, pts: np.ndarray) -> np.ndarray | None:
        """Cut the chip these landmarks align (with context around the face) and run the
        detector on it: a face there whose box overlaps the expected one confirms them; its
        landmarks, mapped back to the image, are returned."""
        detector, predictor = dlib_models()
        size, padding = 200, 0.5
        alignment = Alignment(pts.astype(np.float32), True, "landmarks-whole-frame")
        chip = cut_chip(np.repeat(gray[:, :, None], 3, axis=2), alignment, size, padding, 1)[:, :, 0]
        rects = detector(np.ascontiguousarray(chip), 0)
        if len(rects) == 0 and self.upsample > 0:
            rects = detector(np.ascontiguousarray(chip), self.upsample)
        matrix = chip_affine(alignment, gray.shape[:2], size, padding)
        expected = map_points(matrix, pts)
        ex0, ey0 = expected.min(axis=0)
        ex1, ey1 = expected.max(axis=0)
        for rect in sorted(rects, key=lambda r: -r.area()):
            # the detector's box holds the eyes and nose, and is not much larger than the face
            if (rect.left() <= ex0 and rect.right() >= ex1 and rect.top() <= ey0 and rect.bottom() >= ey1
                    and rect.width() < 4 * max(ex1 - ex0, 1)):
                chip_pts = _points(predictor(np.ascontiguousarray(chip), rect)).astype(np.float64)
                inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
                return map_points(inverse, chip_pts).astype(np.float32)
        return None

    def _cnn(self, rgb: np.ndarray) -> np.ndarray | None:
        from PIL import Image

        _, predictor = dlib_models()
        h, w = rgb.shape[:2]
        shrink = min(1.0, CNN_MAX_SIDE / max(h, w))
        if is_dark(rgb):
            rgb = np.repeat(equalise(rgb, denoise=True)[:, :, None], 3, axis=2)
        small = rgb if shrink == 1.0 else np.asarray(
            Image.fromarray(rgb).resize((max(1, round(w * shrink)), max(1, round(h * shrink))), Image.BOX))
        upsample = 1 if max(small.shape[:2]) < 200 else 0
        if min(small.shape[:2]) * 2 ** upsample < CNN_MIN_SIDE:
            return None
        found = _cnn_detector()(np.ascontiguousarray(small), upsample)
        if len(found) == 0:
            return None
        rect = max(found, key=lambda d: d.confidence).rect
        if shrink != 1.0:
            rect = _scale_rect(rect, 1 / shrink)
        # the CNN's box is tighter and higher than the HOG box the 5-point model was trained
        # on (medians over LFW training people: 1.135x as wide, centered 0.06 widths lower)
        import dlib

        side = max(rect.width(), rect.height())
        cx, cy, half = rect.center().x, rect.center().y + CNN_BOX_DROP * side, CNN_BOX_WIDEN * side / 2
        rect = dlib.rectangle(int(cx - half), int(cy - half), int(cx + half), int(cy + half))
        return _points(predictor(rgb, rect))


def _scale_rect(rect, factor: float):
    import dlib

    return dlib.rectangle(int(round(rect.left() * factor)), int(round(rect.top() * factor)),
                          int(round(rect.right() * factor)), int(round(rect.bottom() * factor)))


def chip_affine(alignment: Alignment, image_hw: tuple[int, int], size: int, padding: float) -> np.ndarray:
    """The 2x3 matrix mapping source pixel (x, y, 1) to chip pixel coordinates.

    For a detected face this is dlib's ``get_face_chip_details`` box; otherwise the
    centered fallback square.
    """
    import dlib

    if alignment.detected:
        parts = [dlib.point(int(round(x)), int(round(y))) for x, y in alignment.landmarks]
        xs, ys = alignment.landmarks[:, 0], alignment.landmarks[:, 1]
        box = dlib.rectangle(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
        details = dlib.get_face_chip_details(dlib.full_object_detection(box, parts), size, padding)
        rect, angle = details.rect, details.angle
        left, top, right, bottom = rect.left(), rect.top(), rect.right(), rect.bottom()
    else:
        h, w = image_hw
        side = FALLBACK_SIDE * min(h, w) * (1 + 2 * padding) / 1.5  # padding 0.25 -> the measured box
        cx, cy = 0.5 * w, FALLBACK_CENTER_Y * h
        left, top, right, bottom = cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2
        angle = 0.0
    # dlib maps the rect's corners, rotated by `angle` about its center, onto the chip's corners.
    cx, cy = (left + right) / 2, (top + bottom) / 2
    cos, sin = math.cos(angle), math.sin(angle)

    def rot(x, y):
        dx, dy = x - cx, y - cy
        return cx + cos * dx - sin * dy, cy + sin * dx + cos * dy

    src = np.array([rot(left, top), rot(right, top), rot(right, bottom)], dtype=np.float64)
    dst = np.array([[0, 0], [size - 1, 0], [size - 1, size - 1]], dtype=np.float64)
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T  # (2, 3): chip = M @ [x, y, 1]


def map_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


@dataclass(frozen=True)
class Perturbation:
    """A view of an aligned face: a mirror, then a rotation/scale about the chip's center and
    a shift (a fraction of the chip's side). Defined in chip coordinates, so the same view
    can be cut at any size: the student's crop and the teacher's chip see the same face."""

    angle_deg: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0
    flip: bool = False

    @classmethod
    def sample(cls, seed: int, max_angle_deg: float = 10.0, max_scale: float = 0.08, max_shift: float = 0.06):
        rng = np.random.default_rng(seed)
        return cls(float(rng.uniform(-max_angle_deg, max_angle_deg)), float(rng.uniform(1 - max_scale, 1 + max_scale)),
                   float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift)),
                   bool(rng.random() < 0.5))

    def matrix(self, size: int) -> np.ndarray:
        """3x3 map from chip pixel coordinates to the perturbed chip's."""
        c = (size - 1) / 2.0
        flip = np.array([[-1.0, 0, size - 1], [0, 1, 0], [0, 0, 1]]) if self.flip else np.eye(3)
        a = math.radians(self.angle_deg)
        rot = self.scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        sim = np.eye(3)
        sim[:2, :2] = rot
        sim[:2, 2] = np.array([c, c]) - rot @ np.array([c, c]) + np.array([self.shift_x, self.shift_y]) * size
        return sim @ flip


OUTSIDE_FILLS = ("black", "edge")
CROP_OUTSIDE = "edge"  # what the students' crops show past the photo (the teacher's chips: black; cut_chip)


def chip_matrix(alignment: Alignment, shape: tuple[int, int], size: int, padding: float,
                perturbation: Perturbation | None = None) -> np.ndarray:
    """The 2x3 map from source pixels to a chip's pixels (chip_affine), perturbed if asked."""
    matrix = chip_affine(alignment, shape, size, padding)
    if perturbation is not None:
        matrix = (perturbation.matrix(size) @ np.vstack([matrix, [0, 0, 1]]))[:2]
    return matrix


def chip_corners(matrix: np.ndarray, size: int) -> np.ndarray:
    """Where a chip's four corners lie in the source image: (2, 4) x, y (``matrix``: source -> chip)."""
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
    return inverse @ np.array([[0, size, 0, size], [0, 0, size, size], [1, 1, 1, 1]], np.float64)


def _beyond(corners: np.ndarray, shape: tuple[int, int]) -> bool:
    h, w = shape
    return bool(corners[0].min() < 1 or corners[1].min() < 1 or corners[0].max() > w - 2 or corners[1].max() > h - 2)


def reaches_outside(matrix: np.ndarray, size: int, shape: tuple[int, int]) -> bool:
    """Whether a chip samples pixels beyond the image (a bilinear pixel's reach included)."""
    return _beyond(chip_corners(matrix, size), shape)


def cut_chip(rgb: np.ndarray, alignment: Alignment, size: int, padding: float, channels: int = 3,
             perturbation: Perturbation | None = None, outside: str = "black") -> np.ndarray:
    """Warp the face onto a ``size`` x ``size`` chip: uint8 (size, size, channels).

    Where the chip reaches beyond the photo (a face at its edge, a photo cut tightly around the
    face) ``outside`` says what it shows: "black", as dlib's ``get_face_chip`` does (the
    teacher's chips: benchmarks/chip_fill.py found black best for the teacher), or "edge", the
    photo's border pixels repeated outward (the students' crops: on crops of 0.85 of the face box
    the `esp32` student's balanced accuracy is 84.7% with black and 92.6% with the edge, where
    untouched photos give 93.9%; docs/data.md). A chip inside the photo is the same either way.

    Downscaling is done in two steps (an area-averaged resize, then a bilinear warp) so a
    48-pixel chip from a 120-pixel face does not alias. An underexposed face
    (``underexposed``) is cut from a brightened copy (``brighten``): the embedders were trained
    on well-exposed faces. A dataset's own face chip (``ChipAligner``: FairFace's extra faces) is
    taken as it is: 601 of FairFace's 45,000 would count as underexposed, and brightening them
    would change the training data of the released models (built before this rule) on every
    machine whose cache does not already hold them.

    Raises:
        DataError: ``rgb`` is not a photo (:func:`check_photo`).
    """
    from PIL import Image

    check_photo(rgb)
    if alignment.method != "chip" and underexposed(rgb, alignment):  # never true of an LFW photo
        rgb = brighten(rgb)
    if outside not in OUTSIDE_FILLS:
        raise ValueError(f"outside must be one of {OUTSIDE_FILLS}, got {outside!r}")
    matrix = chip_matrix(alignment, rgb.shape[:2], size, padding, perturbation)
    corners = chip_corners(matrix, size) if outside == "edge" else None
    if corners is not None and _beyond(corners, rgb.shape[:2]):
        h, w = rgb.shape[:2]
        m = int(math.ceil(max(0.0, -corners.min(), corners[0].max() - w, corners[1].max() - h))) + 2
        rgb = np.pad(rgb, ((m, m), (m, m), (0, 0)), mode="edge")
        matrix = matrix @ np.array([[1.0, 0, -m], [0, 1.0, -m], [0, 0, 1]])  # source pixels moved by m
    scale = math.sqrt(abs(np.linalg.det(matrix[:, :2])))  # chip pixels per source pixel
    img = Image.fromarray(rgb)
    pre = 1.0
    if scale < 0.5:  # shrink the source first so the bilinear warp samples at most 2:1
        pre = min(1.0, 2.0 * scale)
        img = img.resize((max(1, round(img.width * pre)), max(1, round(img.height * pre))), Image.BOX)
        matrix = matrix @ np.diag([1 / pre, 1 / pre, 1.0])
    inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]  # chip -> source, as PIL wants
    chip = img.transform((size, size), Image.AFFINE, inverse.reshape(-1).tolist(), resample=Image.BILINEAR)
    if channels == 1:
        chip = chip.convert("L")
        return np.asarray(chip)[:, :, None]
    return np.asarray(chip)
