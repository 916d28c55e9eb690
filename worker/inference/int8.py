"""int8 networks rebuilt from their verified fp32 file and committed quantization ranges.

No quantized weights are shipped or downloaded. A ranges file (JSON, written by
``bench/int8_calibrate.py`` from calibration photos that are not test photos) names, in the fp32
network as OpenVINO reads it:

- ``activations``: each quantized tensor (a node's output), the 8-bit range it takes there
  (asymmetric, 256 levels, a scalar or one range per channel) and the inputs that read it;
- ``weights``: the convolutions whose weights are quantized, per output channel, symmetric, to
  the range of their own values (computed here, from the verified weights).

``quantize`` inserts FakeQuantize operations on those tensors and int8 weights with their scales;
OpenVINO's CPU plugin then runs those convolutions in int8. Anything the file does not name stays
fp32 (the layers the calibration put back). A name the network lacks fails loudly: the file
belongs to one network and one reader.

Weights of ordinary convolutions take 7 bits (-63 ... 63). CPUs without VNNI (AVX2 ones, like the
machine the ranges were calibrated on) multiply uint8 activations by int8 weights with an
instruction that adds pairs of products into 16 bits and saturates: with full 8-bit weights a pair
can reach 2 x 255 x 127 > 32767, and OpenVINO's int8 convolution then differs from the exact int8
result by up to 15 % of its largest output (tests/unit/test_int8.py, which runs those kernels on
any CPU). CPUs with VNNI (AVX-512 VNNI, like the CI machines) add in 32 bits and are exact with 8
bits too; 7 bits keep one network, with the same embeddings to rounding, on every CPU. Grouped
(depthwise) convolutions take 8 bits: their kernels do not use that instruction.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

ACTIVATION_LEVELS = 256
WEIGHT_MAX = 63  # 7 bits: no 16-bit overflow on CPUs without VNNI (above)
GROUPED_WEIGHT_MAX = 127


class QuantizationError(RuntimeError):
    """A ranges file that does not fit the network it is applied to."""


def encode(values: NDArray[np.float32]) -> str:
    """float32 values as base64 (exact, and a tenth of their decimal size)."""
    return base64.b64encode(np.ascontiguousarray(values, "<f4").tobytes()).decode("ascii")


def _decode(text: str, shape: list[int]) -> NDArray[np.float32]:
    values = np.frombuffer(base64.b64decode(text), "<f4").astype(np.float32)
    if values.size != int(np.prod(shape, dtype=np.int64)):
        raise QuantizationError(f"range of {values.size} values does not fit shape {shape}")
    return values.reshape(shape)


@dataclass(frozen=True, slots=True)
class ActivationRange:
    """One quantized tensor: ``output`` of node ``node``, read by ``consumers`` (node, input)."""

    node: str
    output: int
    consumers: tuple[tuple[str, int], ...]
    low: NDArray[np.float32]
    high: NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Ranges:
    """A ranges file, parsed."""

    network: str  # the fp32 file's name and SHA-256 it was calibrated for
    activations: tuple[ActivationRange, ...]
    weights: tuple[str, ...]  # convolutions whose weights are quantized

    @classmethod
    def parse(cls, data: bytes) -> Ranges:
        try:
            document = json.loads(data)
            activations = tuple(
                ActivationRange(
                    node=entry["node"],
                    output=int(entry["output"]),
                    consumers=tuple((str(name), int(port)) for name, port in entry["consumers"]),
                    low=_decode(entry["low"], entry["shape"]),
                    high=_decode(entry["high"], entry["shape"]),
                )
                for entry in document["activations"]
            )
            return cls(str(document["network"]), activations, tuple(map(str, document["weights"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise QuantizationError(f"not a ranges file: {exc!r}") from exc

    def to_json(self, **header: Any) -> str:
        """The file's text; ``header`` adds facts about the calibration (read by people only)."""
        activations = [
            {
                "node": entry.node,
                "output": entry.output,
                "consumers": [list(consumer) for consumer in entry.consumers],
                "shape": list(entry.low.shape),
                "low": encode(entry.low),
                "high": encode(entry.high),
            }
            for entry in self.activations
        ]
        document = {**header, "network": self.network, "weights": list(self.weights)}
        return json.dumps({**document, "activations": activations}, indent=1) + "\n"


def _fake_quantize(source: Any, low: NDArray[np.float32], high: NDArray[np.float32], levels: int) -> Any:
    from openvino import opset13 as ops

    low_node, high_node = ops.constant(low), ops.constant(high)
    return ops.fake_quantize(source, low_node, high_node, low_node, high_node, levels)


def _int8_weights(weights: NDArray[np.float32], channel_axes: int, largest_value: int) -> Any:
    """``weights`` as integers from -largest_value to largest_value in an int8 constant, converted
    and multiplied back by one scale per output channel (the first ``channel_axes`` axes): the
    form the CPU plugin runs as an int8 convolution."""
    from openvino import opset13 as ops

    reduced = tuple(range(channel_axes, weights.ndim))
    largest = np.abs(weights).max(axis=reduced, keepdims=True)
    scale = np.asarray(np.maximum(largest, 1e-12) / largest_value, np.float32)
    values = np.clip(np.rint(weights / scale), -largest_value, largest_value).astype(np.int8)
    return ops.multiply(ops.convert(ops.constant(values), np.float32), ops.constant(scale)).output(0)


def quantize(model: Any, ranges: Ranges) -> Any:
    """``model`` (an openvino.Model read from the fp32 file) with the file's quantization."""
    nodes = {node.get_friendly_name(): node for node in model.get_ordered_ops()}

    def node(name: str) -> Any:
        if name not in nodes:
            raise QuantizationError(f"the network has no node {name!r}: ranges for another network")
        return nodes[name]

    for entry in ranges.activations:
        quantized = _fake_quantize(
            node(entry.node).output(entry.output), entry.low, entry.high, ACTIVATION_LEVELS
        )
        for consumer, port in entry.consumers:
            node(consumer).input(port).replace_source_output(quantized.output(0))
    for name in ranges.weights:
        convolution = node(name)
        source = convolution.input(1).get_source_output()
        # Grouped convolutions reshape their weights to (groups, out per group, in, kh, kw).
        grouped = convolution.get_type_name() == "GroupConvolution"
        weights = _constant_value(source).reshape(tuple(source.get_shape()))
        int8 = (
            _int8_weights(weights, 2, GROUPED_WEIGHT_MAX)
            if grouped
            else _int8_weights(weights, 1, WEIGHT_MAX)
        )
        convolution.input(1).replace_source_output(int8)
    model.validate_nodes_and_infer_types()
    return model


def _constant_value(output: Any) -> NDArray[np.float32]:
    """The value of a constant weight input (a Constant, or a Reshape of one)."""
    producer = output.get_node()
    if producer.get_type_name() == "Reshape":
        producer = producer.input(0).get_source_output().get_node()
    if producer.get_type_name() != "Constant":
        raise QuantizationError(f"{output.get_node().get_friendly_name()}: weights are not a constant")
    return np.asarray(producer.get_data(), np.float32)
