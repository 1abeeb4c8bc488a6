//! Per-op inference tables: input facts -> output facts.
//!
//! Shapes are written `"b,s,64"` (a name is a symbol, a number a known dim, `""` a scalar);
//! `"?"` means unknown. Values are written as their elements' debug form (`"[2, 3]"`).

use std::sync::Arc;

use transfuse_ir::{DataType, MS_DOMAIN};

use super::{COMPARISONS, ELEMENTWISE_BINARY, UNARY_SAME, infer};
use crate::analysis::ClassData;
use crate::lang::{AttrVal, OpNode};
use crate::symbolic::{ConstValue, Scalar, Shape, SymDim};
use crate::tensors::TensorTable;

pub(super) fn shape(s: &str) -> Shape {
    s.split(',')
        .filter(|d| !d.is_empty())
        .map(|d| match d.parse::<i64>() {
            Ok(v) => SymDim::known(v),
            Err(_) => SymDim::symbol(d),
        })
        .collect()
}

pub(super) fn render(s: Option<&Shape>) -> String {
    match s {
        None => "?".to_string(),
        Some(s) => s
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// A non-constant value of `dtype` and shape `s`.
pub(super) fn value(dtype: DataType, s: &str) -> ClassData {
    ClassData {
        dtype: Some(dtype),
        shape: Some(shape(s)),
        ..ClassData::default()
    }
}

pub(super) fn f32s(s: &str) -> ClassData {
    value(DataType::Float, s)
}

/// A constant int64 vector.
pub(super) fn ints(v: &[i64]) -> ClassData {
    constant(
        DataType::Int64,
        ConstValue::vector(v.iter().map(|&x| Scalar::Int(SymDim::known(x))).collect()),
    )
}

/// A constant int64 scalar.
pub(super) fn int(v: i64) -> ClassData {
    constant(
        DataType::Int64,
        ConstValue::scalar(Scalar::Int(SymDim::known(v))),
    )
}

/// A constant float scalar.
pub(super) fn float(v: f64) -> ClassData {
    constant(DataType::Float, ConstValue::scalar(Scalar::Float(v)))
}

pub(super) fn constant(dtype: DataType, v: ConstValue) -> ClassData {
    ClassData {
        dtype: Some(dtype),
        shape: Some(
            v.dims
                .iter()
                .map(|&d| SymDim::known(i64::try_from(d).unwrap_or(i64::MAX)))
                .collect(),
        ),
        uniform: v.uniform(),
        value: Some(Arc::new(v)),
        constant: true,
        outputs: None,
    }
}

/// An omitted optional input.
pub(super) fn absent() -> ClassData {
    ClassData {
        constant: true,
        ..ClassData::default()
    }
}

pub(super) fn onnx(op: &str) -> OpNode {
    OpNode::new(op, "")
}

pub(super) fn ms(op: &str) -> OpNode {
    OpNode::new(op, MS_DOMAIN)
}

pub(super) fn ints_attr(v: &[i64]) -> AttrVal {
    AttrVal::Ints(Arc::from(v.to_vec()))
}

pub(super) fn run(node: &OpNode, inputs: &[ClassData]) -> ClassData {
    let refs: Vec<&ClassData> = inputs.iter().collect();
    infer(node, &refs, &TensorTable::default())
}

/// Checks the dtype and shape inferred for a single-output node.
pub(super) fn check(node: &OpNode, inputs: &[ClassData], dtype: Option<DataType>, expect: &str) {
    let out = run(node, inputs);
    assert_eq!(out.dtype, dtype, "{}: dtype", node.op);
    assert_eq!(render(out.shape.as_ref()), expect, "{}: shape", node.op);
}

/// Checks the folded value of a single-output node (`"-"`: not folded).
pub(super) fn check_value(node: &OpNode, inputs: &[ClassData], expect: &str) {
    let out = run(node, inputs);
    let got = out
        .value
        .as_ref()
        .map_or("-".to_string(), |v| format!("{:?}", v.elems));
    assert_eq!(got, expect, "{}: value", node.op);
}

#[test]
fn elementwise_binary_ops_broadcast() {
    for op in ELEMENTWISE_BINARY {
        check(
            &onnx(op),
            &[f32s("b,s,64"), f32s("64")],
            Some(DataType::Float),
            "b,s,64",
        );
        check(
            &onnx(op),
            &[f32s("b,1,64"), f32s("s,1")],
            Some(DataType::Float),
            "b,s,64",
        );
        // Two different symbols may be equal at run time: unknown.
        check(
            &onnx(op),
            &[f32s("b"), f32s("s")],
            Some(DataType::Float),
            "?",
        );
    }
    check(
        &ms("BiasGelu"),
        &[f32s("b,s,64"), f32s("64")],
        Some(DataType::Float),
        "b,s,64",
    );
}

#[test]
fn comparisons_give_bool() {
    for op in COMPARISONS {
        check(
            &onnx(op),
            &[f32s("b,1"), f32s("1,s")],
            Some(DataType::Bool),
            "b,s",
        );
    }
}

#[test]
fn unary_ops_keep_type_and_shape() {
    for op in UNARY_SAME {
        check(
            &onnx(op),
            &[f32s("b,s,64")],
            Some(DataType::Float),
            "b,s,64",
        );
    }
    for op in ["Gelu", "QuickGelu"] {
        check(&ms(op), &[f32s("b,64")], Some(DataType::Float), "b,64");
    }
    check(
        &ms("FastGelu"),
        &[f32s("b,s,64"), f32s("64")],
        Some(DataType::Float),
        "b,s,64",
    );
    check(&onnx("IsNaN"), &[f32s("b,4")], Some(DataType::Bool), "b,4");
    check(&onnx("IsInf"), &[f32s("b,4")], Some(DataType::Bool), "b,4");
}

#[test]
fn ops_of_unknown_domains_get_no_facts() {
    check(
        &OpNode::new("Add", "example.custom"),
        &[f32s("4"), f32s("4")],
        None,
        "?",
    );
    check(&OpNode::new("Attention", ""), &[f32s("b,s,64")], None, "?");
}

#[test]
fn type_and_layout_ops() {
    let cases: Vec<(OpNode, Vec<ClassData>, Option<DataType>, &str)> = vec![
        (
            onnx("Where"),
            vec![value(DataType::Bool, "1,1,s,s"), f32s(""), f32s("b,h,s,s")],
            Some(DataType::Float),
            "b,h,s,s",
        ),
        (
            onnx("Cast").with_attr("to", AttrVal::Int(7)),
            vec![f32s("b,s")],
            Some(DataType::Int64),
            "b,s",
        ),
        (
            onnx("CastLike"),
            vec![f32s("b,s"), value(DataType::Float16, "")],
            Some(DataType::Float16),
            "b,s",
        ),
        (
            onnx("MatMul"),
            vec![f32s("b,s,64"), f32s("64,128")],
            Some(DataType::Float),
            "b,s,128",
        ),
        (
            onnx("MatMul"),
            vec![f32s("b,h,s,8"), f32s("b,h,8,t")],
            Some(DataType::Float),
            "b,h,s,t",
        ),
        (
            onnx("MatMul"),
            vec![f32s("64"), f32s("64,3")],
            Some(DataType::Float),
            "3",
        ),
        (
            onnx("Gemm").with_attr("transB", AttrVal::Int(1)),
            vec![f32s("n,64"), f32s("32,64"), f32s("32")],
            Some(DataType::Float),
            "n,32",
        ),
        (
            onnx("Shape"),
            vec![f32s("b,s,64")],
            Some(DataType::Int64),
            "3",
        ),
        (
            onnx("Shape")
                .with_attr("start", AttrVal::Int(1))
                .with_attr("end", AttrVal::Int(-1)),
            vec![f32s("b,s,64")],
            Some(DataType::Int64),
            "1",
        ),
        (onnx("Size"), vec![f32s("b,s")], Some(DataType::Int64), ""),
        (
            onnx("Reshape"),
            vec![f32s("b,s,64"), ints(&[0, 0, 4, 16])],
            Some(DataType::Float),
            "b,s,4,16",
        ),
        (
            onnx("Reshape"),
            vec![f32s("b,s,4,16"), ints(&[0, 0, -1])],
            Some(DataType::Float),
            "b,s,64",
        ),
        (
            onnx("Transpose").with_attr("perm", ints_attr(&[0, 2, 1, 3])),
            vec![f32s("b,s,h,8")],
            Some(DataType::Float),
            "b,h,s,8",
        ),
        (
            onnx("Transpose"),
            vec![f32s("b,s,h")],
            Some(DataType::Float),
            "h,s,b",
        ),
        (
            onnx("Unsqueeze"),
            vec![f32s("b,s"), ints(&[1, 2])],
            Some(DataType::Float),
            "b,1,1,s",
        ),
        (
            onnx("Unsqueeze").with_attr("axes", ints_attr(&[0])),
            vec![f32s("s")],
            Some(DataType::Float),
            "1,s",
        ),
        (
            onnx("Squeeze"),
            vec![f32s("b,1,s"), ints(&[1])],
            Some(DataType::Float),
            "b,s",
        ),
        (
            onnx("Squeeze"),
            vec![f32s("1,4,1")],
            Some(DataType::Float),
            "4",
        ),
        (
            onnx("Flatten"),
            vec![f32s("b,s,64")],
            Some(DataType::Float),
            "b,64*s",
        ),
        (
            onnx("Concat").with_attr("axis", AttrVal::Int(1)),
            vec![f32s("b,s,64"), f32s("b,s,64")],
            Some(DataType::Float),
            "b,2*s,64",
        ),
        (
            onnx("Gather").with_attr("axis", AttrVal::Int(0)),
            vec![f32s("30522,64"), value(DataType::Int64, "b,s")],
            Some(DataType::Float),
            "b,s,64",
        ),
        (
            onnx("GatherElements"),
            vec![f32s("b,8"), value(DataType::Int64, "b,2")],
            Some(DataType::Float),
            "b,2",
        ),
        (
            onnx("GatherND"),
            vec![f32s("4,5,6"), value(DataType::Int64, "n,2")],
            Some(DataType::Float),
            "n,6",
        ),
        (
            onnx("ConstantOfShape"),
            vec![ints(&[2, 3])],
            Some(DataType::Float),
            "2,3",
        ),
        (
            onnx("Expand"),
            vec![f32s("1,s"), ints(&[4, 1])],
            Some(DataType::Float),
            "4,s",
        ),
        (
            onnx("Range"),
            vec![int(0), int(10), int(3)],
            Some(DataType::Int64),
            "4",
        ),
        (
            onnx("ArgMax").with_attr("axis", AttrVal::Int(-1)),
            vec![f32s("b,s,10")],
            Some(DataType::Int64),
            "b,s,1",
        ),
        (
            onnx("ArgMin")
                .with_attr("axis", AttrVal::Int(1))
                .with_attr("keepdims", AttrVal::Int(0)),
            vec![f32s("b,s,10")],
            Some(DataType::Int64),
            "b,10",
        ),
        (
            onnx("Conv")
                .with_attr("strides", ints_attr(&[16, 16]))
                .with_attr("kernel_shape", ints_attr(&[16, 16])),
            vec![f32s("b,3,224,224"), f32s("768,3,16,16")],
            Some(DataType::Float),
            "b,768,14,14",
        ),
        (
            // SigLIP's patch embedding: auto_pad VALID, no pads attribute.
            onnx("Conv")
                .with_attr("auto_pad", AttrVal::Str(Arc::from(&b"VALID"[..])))
                .with_attr("strides", ints_attr(&[14, 14]))
                .with_attr("kernel_shape", ints_attr(&[14, 14])),
            vec![f32s("b,3,225,225"), f32s("768,3,14,14")],
            Some(DataType::Float),
            "b,768,16,16",
        ),
        (
            // SAME_UPPER: ceil(len / stride), whatever the kernel.
            onnx("Conv")
                .with_attr("auto_pad", AttrVal::Str(Arc::from(&b"SAME_UPPER"[..])))
                .with_attr("strides", ints_attr(&[2]))
                .with_attr("kernel_shape", ints_attr(&[3])),
            vec![f32s("b,16,101"), f32s("32,16,3")],
            Some(DataType::Float),
            "b,32,51",
        ),
        (
            // Swin's window padding: constant pads on [b, h, w, c].
            onnx("Pad"),
            vec![f32s("b,7,7,96"), ints(&[0, 0, 0, 0, 0, 1, 1, 0])],
            Some(DataType::Float),
            "b,8,8,96",
        ),
        (
            // Pads computed at run time: the rank stays.
            onnx("Pad"),
            vec![f32s("b,s,16"), f32s("6")],
            Some(DataType::Float),
            "?,?,?",
        ),
        (
            // MobileBERT's trigram embedding: shifted copies of unknown length beside the
            // sequence itself; off the axis all inputs agree.
            onnx("Concat").with_attr("axis", AttrVal::Int(2)),
            vec![f32s("b,?,16"), f32s("b,s,16"), f32s("b,?,16")],
            Some(DataType::Float),
            "b,s,48",
        ),
        (
            onnx("ScatterND"),
            vec![f32s("17,17"), f32s("16,16,2"), f32s("16,16")],
            Some(DataType::Float),
            "17,17",
        ),
        (
            ms("Attention"),
            vec![f32s("b,s,64"), f32s("64,192")],
            Some(DataType::Float),
            "b,s,64",
        ),
    ];
    for (node, inputs, dtype, expect) in cases {
        check(&node, &inputs, dtype, expect);
    }
}

#[test]
fn normalizations_keep_shape() {
    for op in [
        "LayerNormalization",
        "SkipLayerNormalization",
        "SkipSimplifiedLayerNormalization",
        "SimplifiedLayerNormalization",
        "RMSNormalization",
    ] {
        check(
            &onnx(op),
            &[f32s("b,s,64"), f32s("64")],
            Some(DataType::Float),
            "b,s,64",
        );
    }
}

#[test]
fn slices() {
    let slice = |inputs: Vec<ClassData>, expect: &str| {
        check(&onnx("Slice"), &inputs, Some(DataType::Float), expect);
    };
    slice(vec![f32s("512,64"), ints(&[0]), ints(&[128])], "128,64");
    slice(
        vec![
            f32s("10"),
            ints(&[-1]),
            ints(&[i64::MIN]),
            absent(),
            ints(&[-1]),
        ],
        "10",
    );
    slice(
        vec![
            f32s("10,4"),
            ints(&[1]),
            ints(&[i64::MAX]),
            ints(&[0]),
            ints(&[3]),
        ],
        "3,4",
    );
    // Only a full slice keeps a symbolic dim.
    slice(vec![f32s("s"), ints(&[0]), ints(&[i64::MAX])], "s");
    slice(vec![f32s("s"), ints(&[1]), ints(&[i64::MAX])], "?");
    // Attribute form (before opset 10).
    check(
        &onnx("Slice")
            .with_attr("starts", ints_attr(&[2]))
            .with_attr("ends", ints_attr(&[5]))
            .with_attr("axes", ints_attr(&[1])),
        &[f32s("b,8")],
        Some(DataType::Float),
        "b,3",
    );
}

#[test]
fn reductions() {
    for op in [
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL2",
        "ReduceL1",
        "ReduceSumSquare",
        "ReduceLogSumExp",
        "ReduceLogSum",
    ] {
        check(
            &onnx(op).with_attr("axes", ints_attr(&[-1])),
            &[f32s("b,s,64")],
            Some(DataType::Float),
            "b,s,1",
        );
        check(
            &onnx(op).with_attr("keepdims", AttrVal::Int(0)),
            &[f32s("b,s,64"), ints(&[1])],
            Some(DataType::Float),
            "b,64",
        );
        check(
            &onnx(op).with_attr("keepdims", AttrVal::Int(0)),
            &[f32s("b,s,64")],
            Some(DataType::Float),
            "",
        );
    }
}

fn outputs(node: &OpNode, inputs: &[ClassData]) -> Vec<(Option<DataType>, String)> {
    run(node, inputs)
        .outputs
        .map(|o| {
            o.iter()
                .map(|f| (f.dtype, render(f.shape.as_ref())))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn multi_output_ops() {
    let f = Some(DataType::Float);
    assert_eq!(
        outputs(
            &onnx("Split")
                .with_outputs(3)
                .with_attr("axis", AttrVal::Int(-1)),
            &[f32s("b,s,192")],
        ),
        vec![(f, "b,s,64".into()); 3]
    );
    assert_eq!(
        outputs(
            &onnx("Split").with_outputs(2),
            &[f32s("6,b"), ints(&[2, 4])]
        ),
        vec![(f, "2,b".into()), (f, "4,b".into())]
    );
    // Sizes that do not match the output count: nothing.
    assert!(outputs(&onnx("Split").with_outputs(3), &[f32s("6"), ints(&[2, 4])]).is_empty());
    assert_eq!(
        outputs(
            &onnx("LayerNormalization").with_outputs(3),
            &[f32s("b,s,64"), f32s("64"), f32s("64")]
        ),
        vec![
            (f, "b,s,64".into()),
            (f, "b,s,1".into()),
            (f, "b,s,1".into())
        ]
    );
    assert_eq!(
        outputs(
            &ms("SkipLayerNormalization").with_outputs(4),
            &[f32s("b,s,64"), f32s("b,s,64"), f32s("64")]
        ),
        vec![
            (f, "b,s,64".into()),
            (f, "b,s,1".into()),
            (f, "b,s,1".into()),
            (f, "b,s,64".into())
        ]
    );
    assert_eq!(
        outputs(&onnx("Dropout").with_outputs(2), &[f32s("b,8")]),
        vec![(f, "b,8".into()), (Some(DataType::Bool), "b,8".into())]
    );
}
