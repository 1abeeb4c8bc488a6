//! Shape, layout and indexing ops, including the attribute-vs-input forms across opsets.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use common::*;
use transfuse_ir::AttrValue;

fn iota(shape: &[usize]) -> transfuse_interp::Value {
    let n: usize = shape.iter().product();
    f32s(shape, &(0..n).map(|i| i as f32).collect::<Vec<_>>())
}

#[test]
fn reshape_zero_and_minus_one() {
    let x = iota(&[2, 3, 4]);
    let y = run1(
        13,
        op("Reshape", &[], &[]),
        vec![x.clone(), i64s(&[3], &[0, -1, 2])],
    );
    assert_eq!(y.shape(), &[2, 6, 2]);
    assert_eq!(y.to_f64_vec(), x.to_f64_vec());
    // allowzero = 1 (opset 14): 0 is a real zero dim.
    let empty = iota(&[0, 3]);
    let y = run1(
        14,
        op("Reshape", &[], &[]).with_attr("allowzero", int(1)),
        vec![empty, i64s(&[2], &[3, 0])],
    );
    assert_eq!(y.shape(), &[3, 0]);
    let err = run_op(
        13,
        op("Reshape", &[], &[]),
        vec![Some(x), Some(i64s(&[2], &[5, -1]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot reshape"), "{err}");
}

#[test]
fn reshape_to_dims_whose_product_overflows_is_an_error() {
    // 2^61 + 1 times 8 wraps to 8 in 64 bits: the element count must be checked, not wrapped
    // (a fuzzing finding: with overflow checks on, the product panicked).
    let x = iota(&[8]);
    for requested in [&[(1i64 << 61) + 1, 8][..], &[i64::MAX, 4, -1][..]] {
        let err = run_op(
            13,
            op("Reshape", &[], &[]),
            vec![Some(x.clone()), Some(i64s(&[requested.len()], requested))],
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("cannot reshape"), "{err}");
    }
}

#[test]
fn reshape_of_a_transposed_value_uses_logical_order() {
    let out = ModelBuilder::new(13)
        .input("x", iota(&[2, 3]))
        .initializer("shape", &i64s(&[1], &[6]))
        .node(op("Transpose", &["x"], &["t"]).with_attr("perm", ints(&[1, 0])))
        .node(op("Reshape", &["t", "shape"], &["y"]))
        .outputs(&["y"])
        .run()
        .unwrap();
    assert_exact(&out[0], &f32s(&[6], &[0., 3., 1., 4., 2., 5.]));
}

#[test]
fn flatten_axes() {
    let x = iota(&[2, 3, 4]);
    assert_eq!(
        run1(13, op("Flatten", &[], &[]), vec![x.clone()]).shape(),
        &[2, 12]
    );
    assert_eq!(
        run1(
            13,
            op("Flatten", &[], &[]).with_attr("axis", int(0)),
            vec![x.clone()]
        )
        .shape(),
        &[1, 24]
    );
    assert_eq!(
        run1(
            13,
            op("Flatten", &[], &[]).with_attr("axis", int(-1)),
            vec![x.clone()]
        )
        .shape(),
        &[6, 4]
    );
    assert_eq!(
        run1(
            13,
            op("Flatten", &[], &[]).with_attr("axis", int(3)),
            vec![x]
        )
        .shape(),
        &[24, 1]
    );
}

#[test]
fn squeeze_unsqueeze_axes_attribute_before_13_input_after() {
    let x = iota(&[1, 3, 1]);
    let y = run1(
        11,
        op("Squeeze", &[], &[]).with_attr("axes", ints(&[0])),
        vec![x.clone()],
    );
    assert_eq!(y.shape(), &[3, 1]);
    let y = run1(
        13,
        op("Squeeze", &[], &[]),
        vec![x.clone(), i64s(&[1], &[-1])],
    );
    assert_eq!(y.shape(), &[1, 3]);
    let y = run1(13, op("Squeeze", &[], &[]), vec![x.clone()]);
    assert_eq!(y.shape(), &[3]);
    let y = run1(
        13,
        op("Squeeze", &[], &[]),
        vec![x.clone(), i64s(&[0], &[])],
    );
    assert_eq!(y.shape(), &[3]);
    let err = run_op(
        13,
        op("Squeeze", &[], &[]),
        vec![Some(x.clone()), Some(i64s(&[1], &[1]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot squeeze"), "{err}");
    // The attribute is rejected where the input replaced it.
    let err = run_op(
        13,
        op("Squeeze", &[], &[]).with_attr("axes", ints(&[0])),
        vec![Some(x.clone())],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("axes"), "{err}");

    let v = iota(&[3]);
    let y = run1(
        11,
        op("Unsqueeze", &[], &[]).with_attr("axes", ints(&[0, 2])),
        vec![v.clone()],
    );
    assert_eq!(y.shape(), &[1, 3, 1]);
    let y = run1(13, op("Unsqueeze", &[], &[]), vec![v, i64s(&[2], &[-1, 0])]);
    assert_eq!(y.shape(), &[1, 3, 1]);
}

#[test]
fn concat_and_split_forms() {
    let a = iota(&[2, 2]);
    let b = f32s(&[2, 1], &[9., 8.]);
    let y = run1(
        13,
        op("Concat", &[], &[]).with_attr("axis", int(-1)),
        vec![a, b],
    );
    assert_exact(&y, &f32s(&[2, 3], &[0., 1., 9., 2., 3., 8.]));

    let x = iota(&[5]);
    // Opset 11: `split` attribute.
    let out = run_op(
        11,
        op("Split", &[], &[]).with_attr("split", ints(&[2, 3])),
        vec![Some(x.clone())],
        2,
    )
    .unwrap();
    assert_exact(&out[0], &f32s(&[2], &[0., 1.]));
    assert_exact(&out[1], &f32s(&[3], &[2., 3., 4.]));
    // Opset 13: `split` input.
    let out = run_op(
        13,
        op("Split", &[], &[]),
        vec![Some(x.clone()), Some(i64s(&[2], &[4, 1]))],
        2,
    )
    .unwrap();
    assert_exact(&out[1], &f32s(&[1], &[4.]));
    // Opset 18: `num_outputs`, the last chunk smaller.
    let out = run_op(
        18,
        op("Split", &[], &[]).with_attr("num_outputs", int(2)),
        vec![Some(x.clone())],
        2,
    )
    .unwrap();
    assert_exact(&out[0], &f32s(&[3], &[0., 1., 2.]));
    assert_exact(&out[1], &f32s(&[2], &[3., 4.]));
    // No split at all: equal parts, which must divide.
    assert!(run_op(13, op("Split", &[], &[]), vec![Some(x)], 2).is_err());
    let out = run_op(13, op("Split", &[], &[]), vec![Some(iota(&[4]))], 2).unwrap();
    assert_exact(&out[1], &f32s(&[2], &[2., 3.]));
}

#[test]
fn slice_attributes_before_10_and_inputs_with_steps_after() {
    let x = iota(&[3, 4]);
    let y = run1(
        9,
        op("Slice", &[], &[])
            .with_attr("starts", ints(&[1, 0]))
            .with_attr("ends", ints(&[3, -1]))
            .with_attr("axes", ints(&[0, 1])),
        vec![x.clone()],
    );
    assert_exact(&y, &f32s(&[2, 3], &[4., 5., 6., 8., 9., 10.]));
    // Negative step walks backwards; huge ends clamp.
    let y = run1(
        13,
        op("Slice", &[], &[]),
        vec![
            x.clone(),
            i64s(&[1], &[-1]),
            i64s(&[1], &[i64::MIN]),
            i64s(&[1], &[1]),
            i64s(&[1], &[-2]),
        ],
    );
    assert_exact(&y, &f32s(&[3, 2], &[3., 1., 7., 5., 11., 9.]));
    let y = run1(
        13,
        op("Slice", &[], &[]),
        vec![x.clone(), i64s(&[1], &[1]), i64s(&[1], &[i64::MAX])],
    );
    assert_exact(&y, &f32s(&[2, 4], &[4., 5., 6., 7., 8., 9., 10., 11.]));
    // start past end gives an empty slice.
    let y = run1(
        13,
        op("Slice", &[], &[]),
        vec![
            x.clone(),
            i64s(&[1], &[3]),
            i64s(&[1], &[1]),
            i64s(&[1], &[1]),
        ],
    );
    assert_eq!(y.shape(), &[3, 0]);
    let err = run_op(
        13,
        op("Slice", &[], &[]),
        vec![
            Some(x),
            Some(i64s(&[1], &[0])),
            Some(i64s(&[1], &[1])),
            None,
            Some(i64s(&[1], &[0])),
        ],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("step is zero"), "{err}");
}

#[test]
fn transpose_expand_tile() {
    let x = iota(&[2, 3]);
    let y = run1(13, op("Transpose", &[], &[]), vec![x.clone()]);
    assert_exact(&y, &f32s(&[3, 2], &[0., 3., 1., 4., 2., 5.]));
    let y = run1(
        13,
        op("Expand", &[], &[]),
        vec![f32s(&[3, 1], &[1., 2., 3.]), i64s(&[3], &[2, 1, 2])],
    );
    assert_exact(
        &y,
        &f32s(
            &[2, 3, 2],
            &[1., 1., 2., 2., 3., 3., 1., 1., 2., 2., 3., 3.],
        ),
    );
    let y = run1(
        13,
        op("Tile", &[], &[]),
        vec![f32s(&[2], &[1., 2.]), i64s(&[1], &[3])],
    );
    assert_exact(&y, &f32s(&[6], &[1., 2., 1., 2., 1., 2.]));
}

#[test]
fn pad_modes_and_forms() {
    let x = f32s(&[3], &[1., 2., 3.]);
    let pads = i64s(&[2], &[2, 1]);
    let pad = |mode: &str| op("Pad", &[], &[]).with_attr("mode", string(mode));
    let y = run_op(
        13,
        pad("constant"),
        vec![Some(x.clone()), Some(pads.clone()), Some(f32s(&[], &[9.]))],
        1,
    )
    .unwrap();
    assert_exact(&y[0], &f32s(&[6], &[9., 9., 1., 2., 3., 9.]));
    assert_exact(
        &run1(13, pad("reflect"), vec![x.clone(), pads.clone()]),
        &f32s(&[6], &[3., 2., 1., 2., 3., 2.]),
    );
    assert_exact(
        &run1(13, pad("edge"), vec![x.clone(), pads.clone()]),
        &f32s(&[6], &[1., 1., 1., 2., 3., 3.]),
    );
    assert_exact(
        &run1(19, pad("wrap"), vec![x.clone(), pads]),
        &f32s(&[6], &[2., 3., 1., 2., 3., 1.]),
    );
    // Opset 2: attributes; negative pads crop.
    let y = run1(
        2,
        op("Pad", &[], &[])
            .with_attr("pads", ints(&[-1, 1]))
            .with_attr("value", float(7.)),
        vec![x.clone()],
    );
    assert_exact(&y, &f32s(&[3], &[2., 3., 7.]));
    // Opset 18: axes input.
    let m = iota(&[2, 2]);
    let y = run_op(
        18,
        pad("constant"),
        vec![
            Some(m),
            Some(i64s(&[2], &[1, 0])),
            None,
            Some(i64s(&[1], &[1])),
        ],
        1,
    )
    .unwrap();
    assert_exact(&y[0], &f32s(&[2, 3], &[0., 0., 1., 0., 2., 3.]));
}

#[test]
fn gather_family() {
    let data = iota(&[3, 2]);
    let y = run1(
        13,
        op("Gather", &[], &[]),
        vec![data.clone(), i64s(&[2, 2], &[0, 2, -1, 1])],
    );
    assert_exact(&y, &f32s(&[2, 2, 2], &[0., 1., 4., 5., 4., 5., 2., 3.]));
    let y = run1(
        13,
        op("Gather", &[], &[]).with_attr("axis", int(1)),
        vec![data.clone(), i32s(&[], &[1])],
    );
    assert_exact(&y, &f32s(&[3], &[1., 3., 5.]));
    let err = run_op(
        13,
        op("Gather", &[], &[]),
        vec![Some(data.clone()), Some(i64s(&[1], &[3]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("out of range"), "{err}");

    let y = run1(
        13,
        op("GatherElements", &[], &[]).with_attr("axis", int(1)),
        vec![data.clone(), i64s(&[3, 1], &[1, 0, -1])],
    );
    assert_exact(&y, &f32s(&[3, 1], &[1., 2., 5.]));

    let y = run1(
        13,
        op("GatherND", &[], &[]),
        vec![data.clone(), i64s(&[2, 2], &[0, 1, 2, 0])],
    );
    assert_exact(&y, &f32s(&[2], &[1., 4.]));
    let y = run1(
        13,
        op("GatherND", &[], &[]),
        vec![data.clone(), i64s(&[2, 1], &[2, 0])],
    );
    assert_exact(&y, &f32s(&[2, 2], &[4., 5., 0., 1.]));
    // batch_dims = 1: each batch row indexes its own data row.
    let y = run1(
        13,
        op("GatherND", &[], &[]).with_attr("batch_dims", int(1)),
        vec![data, i64s(&[3, 1], &[1, 0, 1])],
    );
    assert_exact(&y, &f32s(&[3], &[1., 2., 5.]));

    let y = run1(
        13,
        op("ScatterND", &[], &[]),
        vec![iota(&[4]), i64s(&[2, 1], &[3, 0]), f32s(&[2], &[9., 8.])],
    );
    assert_exact(&y, &f32s(&[4], &[8., 1., 2., 9.]));
}

#[test]
fn shape_with_start_and_end_from_opset_15() {
    let x = iota(&[2, 3, 4, 5]);
    assert_exact(
        &run1(14, op("Shape", &[], &[]), vec![x.clone()]),
        &i64s(&[4], &[2, 3, 4, 5]),
    );
    let y = run1(
        15,
        op("Shape", &[], &[])
            .with_attr("start", int(1))
            .with_attr("end", int(-1)),
        vec![x.clone()],
    );
    assert_exact(&y, &i64s(&[2], &[3, 4]));
    let y = run1(
        15,
        op("Shape", &[], &[])
            .with_attr("start", int(-10))
            .with_attr("end", int(10)),
        vec![x.clone()],
    );
    assert_exact(&y, &i64s(&[4], &[2, 3, 4, 5]));
    assert_exact(&run1(13, op("Size", &[], &[]), vec![x]), &i64s(&[], &[120]));
}

#[test]
fn generators() {
    assert_exact(
        &run1(
            11,
            op("Range", &[], &[]),
            vec![i64s(&[], &[10]), i64s(&[], &[4]), i64s(&[], &[-3])],
        ),
        &i64s(&[2], &[10, 7]),
    );
    assert_exact(
        &run1(
            11,
            op("Range", &[], &[]),
            vec![f32s(&[], &[0.]), f32s(&[], &[1.]), f32s(&[], &[0.25])],
        ),
        &f32s(&[4], &[0., 0.25, 0.5, 0.75]),
    );
    assert_eq!(
        run1(
            11,
            op("Range", &[], &[]),
            vec![i64s(&[], &[5]), i64s(&[], &[1]), i64s(&[], &[1])]
        )
        .shape(),
        &[0]
    );

    let fill = AttrValue::Tensor(i64s(&[1], &[7]).to_tensor("v"));
    let y = run1(
        9,
        op("ConstantOfShape", &[], &[]).with_attr("value", fill),
        vec![i64s(&[2], &[2, 1])],
    );
    assert_exact(&y, &i64s(&[2, 1], &[7, 7]));
    let y = run1(9, op("ConstantOfShape", &[], &[]), vec![i64s(&[1], &[3])]);
    assert_exact(&y, &f32s(&[3], &[0., 0., 0.]));

    let out = ModelBuilder::new(13)
        .node(op("Constant", &[], &["a"]).with_attr("value_ints", ints(&[1, 2])))
        .node(op("Constant", &[], &["b"]).with_attr("value_float", float(0.5)))
        .node(op("Constant", &[], &["c"]).with_attr(
            "value",
            AttrValue::Tensor(f32s(&[2], &[3., 4.]).to_tensor("c")),
        ))
        .outputs(&["a", "b", "c"])
        .run()
        .unwrap();
    assert_exact(&out[0], &i64s(&[2], &[1, 2]));
    assert_exact(&out[1], &f32s(&[], &[0.5]));
    assert_exact(&out[2], &f32s(&[2], &[3., 4.]));
}

#[test]
fn cumsum_exclusive_reverse() {
    let x = f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let axis = i64s(&[], &[1]);
    let y = run1(14, op("CumSum", &[], &[]), vec![x.clone(), axis.clone()]);
    assert_exact(&y, &f32s(&[2, 3], &[1., 3., 6., 4., 9., 15.]));
    let y = run1(
        14,
        op("CumSum", &[], &[]).with_attr("exclusive", int(1)),
        vec![x.clone(), axis.clone()],
    );
    assert_exact(&y, &f32s(&[2, 3], &[0., 1., 3., 0., 4., 9.]));
    let y = run1(
        14,
        op("CumSum", &[], &[]).with_attr("reverse", int(1)),
        vec![x.clone(), axis],
    );
    assert_exact(&y, &f32s(&[2, 3], &[6., 5., 3., 15., 11., 6.]));
    let y = run1(
        14,
        op("CumSum", &[], &[]),
        vec![i64s(&[2, 2], &[1, 1, 1, 1]), i32s(&[], &[0])],
    );
    assert_exact(&y, &i64s(&[2, 2], &[1, 1, 2, 2]));
}

#[test]
fn trilu_upper_and_lower() {
    let x = iota(&[3, 3]);
    let y = run1(14, op("Trilu", &[], &[]), vec![x.clone()]);
    assert_exact(&y, &f32s(&[3, 3], &[0., 1., 2., 0., 4., 5., 0., 0., 8.]));
    let y = run1(
        14,
        op("Trilu", &[], &[]).with_attr("upper", int(0)),
        vec![x, i64s(&[], &[-1])],
    );
    assert_exact(&y, &f32s(&[3, 3], &[0., 0., 0., 3., 0., 0., 6., 7., 0.]));
}

#[test]
fn identity_and_dropout() {
    let x = iota(&[2]);
    assert_exact(&run1(13, op("Identity", &[], &[]), vec![x.clone()]), &x);
    let out = run_op(13, op("Dropout", &[], &[]), vec![Some(x.clone())], 2).unwrap();
    assert_exact(&out[0], &x);
    assert_exact(&out[1], &bools(&[2], &[true, true]));
    let err = run_op(
        13,
        op("Dropout", &[], &[]),
        vec![Some(x), None, Some(bools(&[], &[true]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("training"), "{err}");
}
