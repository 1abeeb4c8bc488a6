//! Inference through run-time shape subgraphs: rank and known dims kept, the rest unknown.
#![allow(clippy::panic)]

use transfuse_ir::DataType;

use super::tests::{
    absent, check, check_value, constant, f32s, int, ints, ints_attr, onnx, run, value,
};
use crate::analysis::ClassData;
use crate::lang::{AttrVal, OpNode};
use crate::symbolic::{ConstValue, Scalar, SymDim};

/// A non-constant int64 vector of `n` elements whose values are not known.
fn computed_ints(n: &str) -> ClassData {
    value(DataType::Int64, n)
}

/// Run-time shape subgraphs: the rank and every dim that is known survive; a dim that is not
/// becomes an unknown size (rendered `?`), distinct from every other once the analysis names it.
#[test]
fn partly_known_shapes() {
    let resize = || onnx("Resize");
    let cases: Vec<(OpNode, Vec<ClassData>, Option<DataType>, &str)> = vec![
        // Sizes computed from Shape: one unknown size per entry.
        (
            resize(),
            vec![f32s("1,32,4,4"), absent(), absent(), computed_ints("4")],
            Some(DataType::Float),
            "?,?,?,?",
        ),
        // Sizes partly folded: the known entries are the dims.
        (
            resize(),
            vec![
                f32s("1,32,4,4"),
                absent(),
                absent(),
                constant(
                    DataType::Int64,
                    ConstValue::vector(vec![
                        Scalar::Int(SymDim::known(1)),
                        Scalar::Int(SymDim::known(32)),
                        Scalar::Int(SymDim::symbol("h")),
                        Scalar::Int(SymDim::unknown()),
                    ]),
                ),
            ],
            Some(DataType::Float),
            "1,32,h,?",
        ),
        // Scales of 1 keep the input's dims; others give floor(dim * scale) or unknown.
        (
            resize(),
            vec![
                f32s("b,32,4,w"),
                absent(),
                constant(
                    DataType::Float,
                    ConstValue::vector(
                        [1.0, 1.0, 2.5, 2.0]
                            .into_iter()
                            .map(Scalar::Float)
                            .collect(),
                    ),
                ),
            ],
            Some(DataType::Float),
            "b,32,10,?",
        ),
        (
            onnx("Upsample"),
            vec![f32s("b,8,h,w"), computed_ints("4")],
            Some(DataType::Float),
            "?,?,?,?",
        ),
        (
            onnx("Expand"),
            vec![f32s("1,1,64"), computed_ints("3")],
            Some(DataType::Float),
            "?,?,64",
        ),
        (
            onnx("ConstantOfShape"),
            vec![computed_ints("2")],
            Some(DataType::Float),
            "?,?",
        ),
        (
            onnx("Range"),
            vec![int(2), value(DataType::Int64, ""), int(1)],
            Some(DataType::Int64),
            "?",
        ),
        (
            onnx("Tile"),
            vec![f32s("b,3,64"), ints(&[2, 1, 1])],
            Some(DataType::Float),
            "2*b,3,64",
        ),
        (
            onnx("Tile"),
            vec![f32s("b,3,64"), computed_ints("3")],
            Some(DataType::Float),
            "?,?,?",
        ),
        (
            onnx("Where"),
            vec![value(DataType::Bool, "b,1,s"), f32s("1,h,1"), f32s("b,1,t")],
            Some(DataType::Float),
            "b,h,?",
        ),
        // Slice with computed bounds on axis 1: the other dims stay.
        (
            onnx("Slice"),
            vec![
                f32s("b,s,64"),
                computed_ints("1"),
                computed_ints("1"),
                ints(&[1]),
            ],
            Some(DataType::Float),
            "b,?,64",
        ),
        // XLM's `x[:, -s:]` on a [b, s] input: the whole axis, its symbol kept. The same
        // start on an axis of another length is only known to be some size.
        (
            onnx("Slice"),
            vec![
                f32s("b,s"),
                minus_symbol("s"),
                ints(&[i64::MAX]),
                ints(&[1]),
                ints(&[1]),
            ],
            Some(DataType::Float),
            "b,s",
        ),
        (
            onnx("Slice"),
            vec![
                f32s("b,t"),
                minus_symbol("s"),
                ints(&[i64::MAX]),
                ints(&[1]),
                ints(&[1]),
            ],
            Some(DataType::Float),
            "b,?",
        ),
        // Concat of different sizes along the axis: the others stay.
        (
            onnx("Concat").with_attr("axis", AttrVal::Int(1)),
            vec![f32s("b,1,64"), f32s("b,s,64")],
            Some(DataType::Float),
            "b,?,64",
        ),
        // Patch embedding of an image of unknown size: batch and channels known.
        (
            onnx("Conv")
                .with_attr("strides", ints_attr(&[16, 16]))
                .with_attr("kernel_shape", ints_attr(&[16, 16])),
            vec![f32s("b,3,h,w"), f32s("768,3,16,16")],
            Some(DataType::Float),
            "b,768,?,?",
        ),
        // -1 that is no monomial quotient; a computed target of known length.
        (
            onnx("Reshape"),
            vec![f32s("1,c,h,w"), ints(&[1, -1, 5])],
            Some(DataType::Float),
            "1,?,5",
        ),
        (
            onnx("Reshape"),
            vec![f32s("b,s,64"), computed_ints("2")],
            Some(DataType::Float),
            "?,?",
        ),
        // A known dim wins over a symbol in broadcasting (the symbol is 1 or equal to it).
        (
            onnx("Add"),
            vec![f32s("b,s,64"), f32s("1,5,64")],
            Some(DataType::Float),
            "b,5,64",
        ),
        (
            onnx("MatMul"),
            vec![f32s("b,?,64"), f32s("64,256")],
            Some(DataType::Float),
            "b,?,256",
        ),
    ];
    for (node, inputs, dtype, expect) in cases {
        check(&node, &inputs, dtype, expect);
    }
}

#[test]
fn a_size_divided_by_a_constant_is_an_unknown_size() {
    let size = constant(
        DataType::Int64,
        ConstValue::scalar(Scalar::Int(SymDim::symbol("h"))),
    );
    check_value(&onnx("Div"), &[size.clone(), int(8)], "[?]");
    check_value(&onnx("Div"), &[size, int(-8)], "-");
}

#[test]
fn unknown_sizes_get_names_unique_to_their_class() {
    let mut a = run(
        &onnx("Concat").with_attr("axis", AttrVal::Int(0)),
        &[f32s("1,4"), f32s("s,4")],
    );
    let mut b = a.clone();
    super::name_unknowns(&mut a, 7);
    super::name_unknowns(&mut b, 8);
    let (Some(a), Some(b)) = (a.shape, b.shape) else {
        panic!("Concat keeps the rank");
    };
    assert!(a[0].is_unnamed() && !a[0].is_unknown_placeholder());
    assert_ne!(a[0], b[0]);
    assert_eq!(a[1], SymDim::known(4));
}

/// A folded int64 `[-name]`: minus a symbolic size (a start counted from the end).
fn minus_symbol(name: &str) -> ClassData {
    let minus = SymDim::symbol(name)
        .mul(&SymDim::known(-1))
        .expect("a symbol times -1 is a monomial");
    constant(
        DataType::Int64,
        ConstValue::vector(vec![Scalar::Int(minus)]),
    )
}
