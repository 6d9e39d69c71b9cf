"""The ONNX-graph counter on hand-built graphs, and against fvcore on a registered model."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from cnnprof.onnx_count import count_onnx, module_path


def _graph(nodes, inits, in_shape, out_name, out_rank=4):
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    out = helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [f"d{i}" for i in range(out_rank)])
    g = helper.make_graph(nodes, "g", [inp], [out], initializer=[numpy_helper.from_array(a, n) for n, a in inits.items()])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


def test_conv_grouped_conv_and_params():
    w1 = np.zeros((8, 3, 3, 3), np.float32)  # dense 3x3, 3 -> 8
    w2 = np.zeros((8, 1, 3, 3), np.float32)  # depthwise 3x3 on 8
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["y"], name="/stem/conv/Conv", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["y", "w2"], ["z"], name="/blocks/blocks.0/conv_dw/Conv", pads=[1, 1, 1, 1], group=8),
    ]
    c = count_onnx(_graph(nodes, {"w1": w1, "w2": w2}, [1, 3, 16, 16], "z"))
    assert c.params == 8 * 27 + 8 * 9
    assert [n.macs for n in c.nodes] == [8 * 8 * 8 * 27, 8 * 8 * 8 * 9]
    assert c.macs == 8 * 64 * 36 and c.status == "complete" and c.input_shape == (1, 3, 16, 16)


def test_conv_transpose_gemm_and_matmul():
    wt = np.zeros((4, 2, 2, 2), np.float32)  # ConvTranspose: C_in 4 -> C_out 2, kernel 2, stride 2
    nodes = [helper.make_node("ConvTranspose", ["x", "wt"], ["y"], name="up", strides=[2, 2])]
    c = count_onnx(_graph(nodes, {"wt": wt}, [1, 4, 5, 5], "y"))
    assert c.macs == (4 * 5 * 5) * (2 * 2 * 2)  # every input element feeds C_out x k x k outputs

    wg = np.zeros((10, 6), np.float32)  # Gemm with transB: (1x6) x (6x10)
    nodes = [helper.make_node("Gemm", ["x", "wg"], ["y"], name="/classifier/Gemm", transB=1)]
    assert count_onnx(_graph(nodes, {"wg": wg}, [1, 6], "y", 2)).macs == 60

    wm = np.zeros((6, 7), np.float32)
    nodes = [helper.make_node("MatMul", ["x", "wm"], ["y"], name="mm")]
    assert count_onnx(_graph(nodes, {"wm": wm}, [2, 3, 6], "y", 3)).macs == 2 * 3 * 7 * 6


def test_symbolic_batch_is_counted_at_the_batch_asked_for():
    w = np.zeros((4, 3, 1, 1), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="c")]
    model = _graph(nodes, {"w": w}, ["batch", 3, 4, 4], "y")
    assert count_onnx(model).macs == 12 * 16
    assert count_onnx(model, batch=3).macs == 3 * 12 * 16


def test_unhandled_ops_make_the_count_partial():
    nodes = [helper.make_node("Einsum", ["x", "x"], ["y"], name="attn", equation="ij,ij->ij")]
    c = count_onnx(_graph(nodes, {}, [2, 2], "y", 2))
    assert c.status.startswith("partial: Einsum attn")


def test_module_path_from_exporter_node_names():
    assert module_path("/blocks/blocks.0/conv_dw/conv/Conv") == "blocks.0.conv_dw.conv"
    assert module_path("/level3/level3.2/branches/branches.1/Conv") == "level3.2.branches.1"
    assert module_path("/classifier/Gemm") == "classifier"
    assert module_path("Conv_12") == ""


def test_agrees_with_fvcore_on_a_registered_model(tmp_path):
    """ESPNet has dilated, strided and transposed convolutions: all three formulas at once."""
    from cnnprof import api
    from cnnprof.exporting import export_and_check

    target = api.resolve_targets(["espnet"], input_shape=(3, 64, 128))[0]
    row = export_and_check(target, output=tmp_path / "espnet.onnx")
    assert row.macs_onnx == row.macs and row.counters_agree and row.layer_diffs == ()
    assert row.parity_max_abs < 1e-3
    # batch norm folded into the convolutions (new biases), and kept where no conv precedes it (four
    # tensors instead of two): the graph's initializers are close to, not equal to, the module's params
    assert row.params_onnx != row.params and abs(row.params_onnx - row.params) / row.params < 0.01


@pytest.mark.slow
def test_every_registered_model_agrees_with_fvcore(tmp_path):
    from cnnprof import api
    from cnnprof.exporting import export_and_check

    for target in api.resolve_targets(["*"]):
        row = export_and_check(target, output=tmp_path / f"{target.name}.onnx")
        assert row.counters_agree, (target.name, row.layer_diffs)


def test_tf_same_padding_keeps_shapes_known(tmp_path):
    """EfficientNet-Lite pads its stride-2 convolutions as TensorFlow's "SAME" (a Pad whose pads the
    exporter computes from constants): the counter folds them, so every convolution is counted."""
    from cnnprof import api
    from cnnprof.exporting import export_and_check

    target = api.resolve_targets(["efficientnet_lite0"], input_shape=(3, 65, 64))[0]
    row = export_and_check(target, output=tmp_path / "lite0.onnx")
    assert row.macs_onnx == row.macs and row.counters_agree and row.layer_diffs == ()
    assert row.parity_max_abs < 1e-3
    assert "Pad" in {n.op_type for n in onnx.load(tmp_path / "lite0.onnx").graph.node}
    # only integer tensors were folded: BN-folded weights are the parameters, as for any model
    assert abs(row.params_onnx - row.params) / row.params < 0.01
