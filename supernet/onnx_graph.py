"""Clean-ups of a traced ONNX graph that shrink its bookkeeping, never its weights.

The TorchScript exporter writes the shape arithmetic of every view anew, a Constant node per use,
casts to the type a value already has, and long scoped names: for a small model, several percent
of the file. `simplify(model)` removes them; it never folds an initializer (folding a weight's
Transpose would store a transposed copy, and the tied embedding twice):

    fold       a node whose inputs are all small constants becomes a Constant of its value, so
               does the Shape of a value whose shape inference knows
    no-op      a Cast to the type its input already has, and Identity, pass their input on
    repeats    a node that repeats an earlier one (operator, inputs, attributes) is dropped for
               the earlier one's outputs (common subexpressions, duplicate Constants)
    transposed a weight read only through a Transpose (a Linear layer's) is stored transposed
    dead       nodes no output depends on go
    defaults   attributes that hold the operator's default go; scalar and vector Constants
               are written in their short forms (value_int, value_ints, value_float(s))
    names      intermediate values are named a, b, ..., ba, ...; node names and doc strings go
"""

from __future__ import annotations

import itertools
import string
from collections import Counter

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

FOLD_MAX_ELEMENTS = 64        # a folded value larger than this would grow the file: kept as ops
_DIGITS = string.ascii_lowercase + string.ascii_uppercase + string.digits


def simplify(model: onnx.ModelProto) -> None:
    """Apply every clean-up to `model`'s graph, in place."""
    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model).graph
    values = list(inferred.value_info) + list(inferred.input) + list(inferred.output)
    types = {v.name: v.type.tensor_type.elem_type for v in values}
    types.update({t.name: t.data_type for t in graph.initializer})
    shapes = {v.name: _static_shape(v) for v in values}
    outputs = {v.name for v in graph.output}
    keep = {v.name for v in graph.input} | outputs | {t.name for t in graph.initializer}
    alias: dict[str, str] = {}                  # a dropped value -> the value that replaces it
    constants: dict[str, np.ndarray] = {}       # small constant values by (renamed) name
    seen: dict[tuple, list[str]] = {}
    nodes = []
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = alias.get(name, name)
        node = _folded(node, constants, shapes, model.opset_import)
        if _passes_through(node, types) and node.output[0] not in outputs:
            alias[node.output[0]] = node.input[0]
            continue
        key = (node.domain, node.op_type, tuple(node.input),
               tuple(a.SerializeToString() for a in node.attribute))
        if key in seen and not outputs.intersection(node.output):
            alias.update(zip(node.output, seen[key]))
            continue
        seen[key] = list(node.output)
        if node.op_type == "Constant":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        nodes.append(node)
    nodes = _live(_pretransposed(graph, nodes), outputs)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    for node in nodes:
        _drop_defaults(node, opset)
        _short_constant(node)
    _rename(nodes, keep)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]


def _static_shape(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The shape shape inference found for a value, when every dimension is a number."""
    t = value.type.tensor_type
    if not t.HasField("shape") or not all(d.HasField("dim_value") for d in t.shape.dim):
        return None
    return tuple(d.dim_value for d in t.shape.dim)


def _folded(node: onnx.NodeProto, constants: dict[str, np.ndarray],
            shapes: dict[str, tuple[int, ...] | None], opset) -> onnx.NodeProto:
    """`node` as a Constant of its value when every input is a small constant (or it is the
    Shape of a value of static shape), else itself."""
    if node.op_type == "Shape" and len(node.attribute) == 0 and shapes.get(node.input[0]):
        return onnx.helper.make_node("Constant", [], list(node.output), value=numpy_helper.
                                     from_array(np.array(shapes[node.input[0]], np.int64)))
    if node.op_type == "Constant" or not node.input or len(node.output) != 1 or any(
            name not in constants for name in node.input):
        return node
    graph = onnx.helper.make_graph(
        [node], "fold", [],
        [onnx.helper.make_tensor_value_info(node.output[0], onnx.TensorProto.UNDEFINED, None)],
        [numpy_helper.from_array(np.asarray(constants[n]), n) for n in node.input])
    (value,) = ReferenceEvaluator(onnx.helper.make_model(graph, opset_imports=opset)).run(None,
                                                                                          {})
    if np.asarray(value).size > FOLD_MAX_ELEMENTS:
        return node
    return onnx.helper.make_node("Constant", [], list(node.output),
                                 value=numpy_helper.from_array(np.asarray(value)))


def _pretransposed(graph: onnx.GraphProto,
                   nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """A weight read only through one Transpose (a Linear layer's [out, in] matrix) is stored
    transposed instead: the same bytes, one node less. The tied embedding, also read by its
    lookup, keeps its Transpose."""
    weights = {t.name: t for t in graph.initializer}
    readers = Counter(name for node in nodes for name in node.input)
    alias, kept = {}, []
    for node in nodes:
        node.input[:] = [alias.get(name, name) for name in node.input]
        source = node.input[0] if node.input else None
        if node.op_type == "Transpose" and source in weights and readers[source] == 1:
            perm = next(a.ints for a in node.attribute if a.name == "perm")
            value = numpy_helper.to_array(weights[source]).transpose(perm)
            weights[source].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(value), source))
            alias[node.output[0]] = source
            continue
        kept.append(node)
    return kept


def _live(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """The nodes the graph's outputs depend on (folding leaves constants nothing reads)."""
    used, live = set(outputs), []
    for node in reversed(nodes):
        if used.intersection(node.output):
            live.append(node)
            used.update(node.input)
    return live[::-1]


def _drop_defaults(node: onnx.NodeProto, opset: int) -> None:
    """Remove the attributes that hold their operator's default value."""
    schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    defaults = {name: a.default_value for name, a in schema.attributes.items()
                if a.default_value.type}
    kept = [a for a in node.attribute if a.name not in defaults or
            onnx.helper.get_attribute_value(a) !=
            onnx.helper.get_attribute_value(defaults[a.name])]
    del node.attribute[:]
    node.attribute.extend(kept)


def _short_constant(node: onnx.NodeProto) -> None:
    """A scalar or vector int64 / float32 Constant written as value_int(s) / value_float(s)."""
    if node.op_type != "Constant" or node.attribute[0].name != "value":
        return
    value = numpy_helper.to_array(node.attribute[0].t)
    kind = {(np.dtype(np.int64), 0): "value_int", (np.dtype(np.int64), 1): "value_ints",
            (np.dtype(np.float32), 0): "value_float",
            (np.dtype(np.float32), 1): "value_floats"}.get((value.dtype, value.ndim))
    if kind is not None and value.size:
        del node.attribute[:]
        node.attribute.append(onnx.helper.make_attribute(kind, value.tolist()))


def _passes_through(node: onnx.NodeProto, types: dict[str, int]) -> bool:
    """Identity, or a Cast to the element type its input already has."""
    if node.op_type == "Identity":
        return True
    if node.op_type != "Cast":
        return False
    to = next(a.i for a in node.attribute if a.name == "to")
    return types.get(node.input[0]) == to


def _rename(nodes: list[onnx.NodeProto], keep: set[str]) -> None:
    """Short names (a, b, ..., 9, ba, bb, ...) for intermediate values, none of them a kept
    name; no node names or doc strings."""
    names: dict[str, str] = {}
    fresh = (name for name in map(_base62, itertools.count()) if name not in keep)
    for node in nodes:
        node.ClearField("name")
        node.ClearField("doc_string")
        for i, name in enumerate(node.input):
            node.input[i] = names.get(name, name)
        for i, name in enumerate(node.output):
            if name and name not in keep:
                names[name] = node.output[i] = next(fresh)


def _base62(n: int) -> str:
    digits = _DIGITS[n % len(_DIGITS)]
    while n >= len(_DIGITS):
        n //= len(_DIGITS)
        digits = _DIGITS[n % len(_DIGITS)] + digits
    return digits


__all__ = ["simplify", "FOLD_MAX_ELEMENTS"]
