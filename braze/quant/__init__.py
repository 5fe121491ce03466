"""Quantization: weight formats (formats.py), methods by name (methods.py), AWQ scales (awq.py),
GGUF blocks run natively (gguf_blocks.py), saved folders (checkpoint.py). The graph pass that
applies a method is braze/passes/quantize.py."""
from braze.quant.formats import FORMATS, QuantizedTensor, dequantize
from braze.quant.methods import METHOD_EXAMPLES, QuantScheme, parse_method

__all__ = ["FORMATS", "METHOD_EXAMPLES", "QuantScheme", "QuantizedTensor", "dequantize", "parse_method"]
