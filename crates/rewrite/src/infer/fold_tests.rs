//! Per-op constant folding and uniform facts: input facts -> folded value.

use transfuse_ir::DataType;

use super::tests::{
    absent, check, check_value, constant, f32s, float, int, ints, ints_attr, ms, onnx, run,
};
use crate::analysis::ClassData;
use crate::lang::{AttrVal, OpNode};
use crate::symbolic::{ConstValue, Scalar, SymDim};

#[test]
fn folds_shape_arithmetic() {
    let cases: Vec<(OpNode, Vec<ClassData>, &str)> = vec![
        (onnx("Shape"), vec![f32s("b,s,64")], "[b, s, 64]"),
        (onnx("Size"), vec![f32s("b,s,64")], "[64*b*s]"),
        (onnx("Gather"), vec![ints(&[3, 5, 7]), int(-1)], "[7]"),
        (
            onnx("Concat").with_attr("axis", AttrVal::Int(0)),
            vec![ints(&[1, 2]), ints(&[3])],
            "[1, 2, 3]",
        ),
        (
            onnx("Slice"),
            vec![
                ints(&[1, 2, 3, 4]),
                ints(&[-1]),
                ints(&[0]),
                absent(),
                ints(&[-2]),
            ],
            "[4, 2]",
        ),
        (onnx("Unsqueeze"), vec![int(5), ints(&[0])], "[5]"),
        (onnx("Mul"), vec![int(6), int(7)], "[42]"),
        (onnx("Div"), vec![int(-7), int(2)], "[-3]"),
        (onnx("Mod"), vec![int(-7), int(2)], "[1]"),
        (onnx("Div"), vec![int(1), int(0)], "-"),
        (onnx("Mul"), vec![int(i64::MAX), int(2)], "-"),
        (onnx("Equal"), vec![int(3), int(3)], "[1]"),
        (onnx("Sqrt"), vec![float(4.0)], "[2]"),
        (onnx("Neg"), vec![int(i64::MIN)], "-"),
        (
            onnx("Cast").with_attr("to", AttrVal::Int(1)),
            vec![int(3)],
            "[3]",
        ),
        (onnx("Range"), vec![int(0), int(3), int(1)], "[0, 1, 2]"),
        (onnx("Range"), vec![int(0), int(1 << 40), int(1)], "-"),
        (
            onnx("Where"),
            vec![
                constant(
                    DataType::Bool,
                    ConstValue::scalar(Scalar::Int(SymDim::known(0))),
                ),
                int(1),
                int(2),
            ],
            "[2]",
        ),
        (onnx("ConstantOfShape"), vec![ints(&[2])], "[0, 0]"),
        (onnx("ConstantOfShape"), vec![ints(&[1 << 40])], "-"),
        (onnx("Expand"), vec![int(1), ints(&[3])], "[1, 1, 1]"),
        (onnx("Transpose"), vec![ints(&[1, 2])], "[1, 2]"),
    ];
    for (node, inputs, expect) in cases {
        check_value(&node, &inputs, expect);
    }
}

/// A `[rows, cols]` int64 constant.
fn int_matrix(rows: usize, v: &[i64]) -> ClassData {
    let elems = v.iter().map(|&x| Scalar::Int(SymDim::known(x))).collect();
    let dims = vec![rows, v.len() / rows];
    constant(DataType::Int64, ConstValue { dims, elems })
}

/// PyTorch's `F.pad` as the TorchScript exporter writes it: the pads matrix (one row per
/// dim, begin and end) reversed along its rows, transposed and flattened. Both steps fold,
/// so the `Pad` after them has constant pads.
#[test]
fn folds_reversed_and_transposed_pad_matrices() {
    let pads = || int_matrix(3, &[0, 0, 1, 2, 3, 4]);
    let reversed = onnx("Slice");
    let reverse_rows = vec![
        pads(),
        ints(&[-1]),
        ints(&[i64::MIN + 1]),
        ints(&[0]),
        ints(&[-1]),
    ];
    check_value(&reversed, &reverse_rows, "[3, 4, 1, 2, 0, 0]");
    let every_other_column = vec![pads(), ints(&[1]), ints(&[2]), ints(&[1]), ints(&[1])];
    check_value(&reversed, &every_other_column, "[0, 2, 4]");
    let out = run(&reversed, &every_other_column);
    assert_eq!(out.value.as_ref().map(|v| v.dims.clone()), Some(vec![3, 1]));

    let transpose = onnx("Transpose").with_attr("perm", ints_attr(&[1, 0]));
    let out = run(&transpose, &[int_matrix(3, &[3, 4, 1, 2, 0, 0])]);
    let value = out.value.as_ref().expect("folded");
    assert_eq!(value.dims, vec![2, 3]);
    check_value(
        &transpose,
        &[int_matrix(3, &[3, 4, 1, 2, 0, 0])],
        "[3, 1, 0, 4, 2, 0]",
    );
    // The default permutation reverses the axes; a repeated axis is no permutation.
    check_value(&onnx("Transpose"), &[int_matrix(1, &[7, 8])], "[7, 8]");
    let repeated = onnx("Transpose").with_attr("perm", ints_attr(&[0, 0]));
    check_value(&repeated, &[int_matrix(3, &[3, 4, 1, 2, 0, 0])], "-");
}

/// Large or overflowing targets are never folded (and never allocated).
#[test]
fn expand_to_huge_shapes_is_not_folded() {
    for target in [
        vec![1 << 31, 64],
        vec![i64::MAX],
        vec![i64::MAX, i64::MAX],
        vec![1 << 62, 4],
        vec![1, 1, 16384, 16384],
    ] {
        let out = run(&onnx("Expand"), &[float(1.0), ints(&target)]);
        assert!(out.value.is_none(), "{target:?} folded");
        // The uniform fact survives: every element is still 1.
        assert_eq!(out.uniform, Some(Scalar::Float(1.0)), "{target:?}");
    }
    let out = run(&onnx("ConstantOfShape"), &[ints(&[1 << 62, 4])]);
    assert!(out.value.is_none());
    let out = run(&onnx("Tile"), &[float(1.0), ints(&[1 << 62, 4])]);
    assert!(out.value.is_none());
}

#[test]
fn symbolic_products_never_wrap() {
    let big = constant(
        DataType::Int64,
        ConstValue::scalar(Scalar::Int(
            SymDim::symbol("b")
                .mul(&SymDim::known(1 << 62))
                .expect("b * 2^62 is representable"),
        )),
    );
    check_value(&onnx("Mul"), &[big.clone(), int(4)], "-");
    check(
        &onnx("Size"),
        &[f32s("4611686018427387904,4")],
        Some(DataType::Int64),
        "",
    );
    check_value(&onnx("Size"), &[f32s("4611686018427387904,4")], "-");
    check(
        &onnx("Flatten"),
        &[f32s("b,4611686018427387904,4")],
        Some(DataType::Float),
        "?",
    );
    // Conv arithmetic with extreme attributes: no facts, no overflow.
    check(
        &onnx("Conv")
            .with_attr("kernel_shape", ints_attr(&[i64::MAX]))
            .with_attr("dilations", ints_attr(&[i64::MAX])),
        &[f32s("1,3,8"), f32s("4,3,2")],
        Some(DataType::Float),
        "?",
    );
}

#[test]
fn uniform_facts() {
    let uniform = |node: OpNode, inputs: Vec<ClassData>| run(&node, &inputs).uniform;
    let ones = ClassData {
        uniform: Some(Scalar::Float(1.0)),
        ..f32s("768")
    };
    assert_eq!(
        uniform(onnx("Expand"), vec![ones.clone(), ints(&[4, 768])]),
        Some(Scalar::Float(1.0))
    );
    assert_eq!(
        uniform(onnx("Mul"), vec![ones.clone(), float(3.0)]),
        Some(Scalar::Float(3.0))
    );
    assert_eq!(
        uniform(
            onnx("Concat").with_attr("axis", AttrVal::Int(0)),
            vec![ones.clone(), ones.clone()]
        ),
        Some(Scalar::Float(1.0))
    );
    assert_eq!(
        uniform(
            onnx("Concat").with_attr("axis", AttrVal::Int(0)),
            vec![ones.clone(), f32s("3")]
        ),
        None
    );
    assert_eq!(
        uniform(
            onnx("Cast").with_attr("to", AttrVal::Int(7)),
            vec![ones.clone()]
        ),
        Some(Scalar::Int(SymDim::known(1)))
    );
    assert_eq!(
        uniform(onnx("Where"), vec![f32s("768"), ones.clone(), ones.clone()]),
        Some(Scalar::Float(1.0))
    );
    assert_eq!(
        uniform(onnx("ConstantOfShape"), vec![ints(&[1 << 40])]),
        Some(Scalar::Float(0.0))
    );
    assert_eq!(uniform(ms("Gelu"), vec![ones]), None);
}
