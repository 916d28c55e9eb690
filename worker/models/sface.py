"""SFace (OpenCV Zoo, 128-d, Apache-2.0 weights), the int8 block-quantized build; runs on any ModelSession.

SFace is a MobileFaceNet trained with the sigmoid-constrained hypersphere loss; OpenCV's
``cv2.FaceRecognizerSF`` runs it on a 112x112 crop aligned to ArcFace's 5-point template, in RGB
order (it swaps a BGR crop's channels), 0-255: the graph subtracts 127.5 and multiplies by 1/128
itself. Our crops are RGB already, so they go in as they are.
"""

from __future__ import annotations

import cv2
import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import numpy_helper

from worker.imaging.align import ARCFACE_SIZE, arcface_template
from worker.inference.files import ModelSpec
from worker.inference.session import ModelSession

SFACE_SIZE = ARCFACE_SIZE


class SFace:
    def __init__(self, session: ModelSession, spec: ModelSpec) -> None:
        self.spec = spec
        self._session = session
        self._input = session.get_inputs()[0].name
        self.input_size = SFACE_SIZE
        self.dimension = 128
        self.template = arcface_template(SFACE_SIZE)

    def embed(self, crops: NDArray[np.uint8]) -> NDArray[np.float32]:
        if len(crops) == 0:
            return np.zeros((0, self.dimension), np.float32)
        blob = cv2.dnn.blobFromImages(list(crops), 1.0, (SFACE_SIZE,) * 2, (0.0,) * 3, swapRB=False)
        output = self._session.run(None, {self._input: blob})[0]
        return np.asarray(output, dtype=np.float32).reshape(-1, self.dimension)


def _dequantize(
    values: NDArray[np.int8], scales: NDArray[np.float32], zeros: NDArray[np.int8], axis: int, block: int
) -> NDArray[np.float32]:
    """ONNX DequantizeLinear (opset 21) with blocks along ``axis``: (x - zero) * scale per block."""
    if block:
        length = values.shape[axis]
        scales = np.repeat(scales, block, axis=axis).take(np.arange(length), axis=axis)
        zeros = np.repeat(zeros, block, axis=axis).take(np.arange(length), axis=axis)
    elif scales.ndim == 1 and values.ndim > 1:  # one scale per slice along axis
        shape = [1] * values.ndim
        shape[axis] = -1
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    result: NDArray[np.float32] = (values.astype(np.float32) - zeros.astype(np.float32)) * scales
    return result


def runnable_graph(model_bytes: bytes) -> bytes:
    """The verified OpenCV Zoo file made loadable and fast on ONNX Runtime (and OpenVINO).

    As shipped, the graph still lists its weights' former fp32 names as graph inputs that no node
    reads (ONNX Runtime and OpenCV 5 then demand them as inputs), declares batch 1, and
    dequantizes its int8 weights on every call (ONNX Runtime does not fold DequantizeLinear: 3x
    slower than fp32; OpenVINO refuses its blocked scales). Here, in memory, the weights are
    dequantized once into fp32 constants (the same values DequantizeLinear computes), the unread
    inputs are dropped and the batch axis is made free. The embeddings stay those of OpenCV's
    own runtime on the shipped file (tests/unit/test_sface.py).
    """
    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    folded: dict[str, NDArray[np.float32]] = {}
    kept = []
    for node in graph.node:
        attributes = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear" and all(name in constants for name in node.input):
            values, scales, zeros = (constants[name] for name in node.input)
            axis = int(attributes.get("axis", 1)) % max(values.ndim, 1)
            folded[node.output[0]] = _dequantize(
                values, scales, zeros, axis, int(attributes.get("block_size", 0))
            )
        elif node.op_type == "Reshape" and node.input[0] in folded and node.input[1] in constants:
            folded[node.output[0]] = folded.pop(node.input[0]).reshape(constants[node.input[1]])
        else:
            kept.append(node)
    read = {name for node in kept for name in node.input}
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [t for t in graph.initializer if t.name in read]
    initializers += [numpy_helper.from_array(value, name) for name, value in folded.items() if name in read]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    # Constants listed as inputs too (the file's scalars) would be inputs callers may override.
    constant_names = {tensor.name for tensor in initializers}
    inputs = [value for value in graph.input if value.name in read and value.name not in constant_names]
    del graph.input[:]
    graph.input.extend(inputs)
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"
    serialized: bytes = model.SerializeToString()
    return serialized
