"""Quantization-aware training (prune-preserving after pruning) yields a full-int8 model
that keeps the pruned zeros and runs in the TFLM kernels."""

import numpy as np

from tinyface.train import distill, prune, quantize
from tinyface.train.student import build_student


def _zero_share_of_int8_weights(flat: bytes) -> float:
    """Share of zeros among the int8 weights of conv / fully-connected filters (4-D and 2-D
    constant tensors), read from the flatbuffer."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromObj(fb.Model.GetRootAsModel(bytearray(flat), 0))
    zeros = total = 0
    for t in m.subgraphs[0].tensors:
        data = m.buffers[t.buffer].data
        if data is None or t.type != fb.TensorType.INT8 or len(t.shape) not in (2, 4):
            continue
        w = np.asarray(data, np.uint8)
        zeros += int((w == 0).sum())
        total += w.size
    return zeros / total


def test_prune_preserving_qat_gives_sparse_full_int8_model_that_tflm_runs():
    from tinyface.model.runtime import TfliteRunner, TflmRunner
    from tinyface.train.quantize import io_quantization

    model, _ = build_student("dsnet", (32, 32, 1), 16, 0.5)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (64, 32, 32, 1), dtype=np.uint8)
    t = distill.center_targets(rng.normal(size=(64, 16)).astype(np.float32), np.zeros(16, np.float32))
    loss = distill.make_loss(distill.LossWeights())
    wrapped = prune.wrap_for_pruning(model, 0.5, 0, 8)
    distill.fit(wrapped, x, t, None, None, 2, 8, 1e-3, loss, augment=False, callbacks=prune.pruning_callbacks(),
                warmup_epochs=0)
    pruned = prune.strip(wrapped)

    qat = quantize.quantize_aware(pruned, prune_preserving=True)
    # a learning rate large enough that plain QAT would move the zeros away (measured: 1% zeros left)
    distill.fit(qat, x, t, None, None, 1, 8, 1e-2, loss, augment=False, warmup_epochs=0)
    flat = quantize.convert_int8(qat, x[:16])

    io = io_quantization(flat)
    assert io["input_shape"] == [1, 32, 32, 1] and io["output_shape"] == [1, 16]
    int8 = 9  # TensorType.INT8
    assert io["input_type"] == int8 and io["output_type"] == int8
    assert _zero_share_of_int8_weights(flat) > 0.4, "QAT lost the pruned zeros"
    xq = (x[:4].astype(np.int16) - 128).astype(np.int8)
    host, micro = TfliteRunner(flat).run(xq), TflmRunner(flat).run(xq)
    assert host.dtype == np.int8 and np.abs(host.astype(int) - micro.astype(int)).max() <= 1
    assert np.ptp(host.astype(int)) > 0, "constant output"
