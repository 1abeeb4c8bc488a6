//! Reductions, arg-reductions, softmax and normalizations, including the opset-dependent
//! forms (axes attribute vs input, Softmax's 2-D coercion before opset 13).
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use common::*;

fn sample() -> transfuse_interp::Value {
    f32s(&[2, 3], &[1., 2., 3., 4., 5., 6.])
}

#[test]
fn reduce_axes_attribute_before_18_input_after() {
    let x = sample();
    let y = run1(
        13,
        op("ReduceMean", &[], &[]).with_attr("axes", ints(&[1])),
        vec![x.clone()],
    );
    assert_exact(&y, &f32s(&[2, 1], &[2., 5.]));
    let y = run1(
        18,
        op("ReduceMean", &[], &[]).with_attr("keepdims", int(0)),
        vec![x.clone(), i64s(&[1], &[0])],
    );
    assert_exact(&y, &f32s(&[3], &[2.5, 3.5, 4.5]));
    // The attribute is rejected at opset 18.
    let err = run_op(
        18,
        op("ReduceMean", &[], &[]).with_attr("axes", ints(&[1])),
        vec![Some(x.clone())],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("axes"), "{err}");
    // ReduceSum moved to an input at opset 13 already.
    let y = run1(
        13,
        op("ReduceSum", &[], &[]),
        vec![x.clone(), i64s(&[1], &[-1])],
    );
    assert_exact(&y, &f32s(&[2, 1], &[6., 15.]));
    let y = run1(
        11,
        op("ReduceSum", &[], &[]).with_attr("axes", ints(&[0])),
        vec![x.clone()],
    );
    assert_exact(&y, &f32s(&[1, 3], &[5., 7., 9.]));
    // No axes: reduce everything, or nothing with noop_with_empty_axes.
    assert_exact(
        &run1(13, op("ReduceSum", &[], &[]), vec![x.clone()]),
        &f32s(&[1, 1], &[21.]),
    );
    let y = run1(
        13,
        op("ReduceSum", &[], &[]).with_attr("noop_with_empty_axes", int(1)),
        vec![x.clone()],
    );
    assert_exact(&y, &x);
}

#[test]
fn every_reduction() {
    let x = f32s(&[2, 2], &[1., -2., 3., 4.]);
    let r = |name: &str| {
        run1(
            13,
            op(name, &[], &[])
                .with_attr("axes", ints(&[1]))
                .with_attr("keepdims", int(0)),
            vec![x.clone()],
        )
    };
    assert_exact(&r("ReduceMax"), &f32s(&[2], &[1., 4.]));
    assert_exact(&r("ReduceMin"), &f32s(&[2], &[-2., 3.]));
    assert_exact(&r("ReduceProd"), &f32s(&[2], &[-2., 12.]));
    assert_exact(&r("ReduceL1"), &f32s(&[2], &[3., 7.]));
    assert_close(&r("ReduceL2"), &f32s(&[2], &[5f32.sqrt(), 5.]), 1e-6);
    assert_exact(&r("ReduceSumSquare"), &f32s(&[2], &[5., 25.]));
    assert_close(
        &r("ReduceLogSum"),
        &f32s(&[2], &[(-1f32).ln(), 7f32.ln()]),
        1e-6,
    );
    let lse = |a: f32, b: f32| (a.exp() + b.exp()).ln();
    assert_close(
        &r("ReduceLogSumExp"),
        &f32s(&[2], &[lse(1., -2.), lse(3., 4.)]),
        1e-6,
    );
    let y = run1(
        13,
        op("ReduceMax", &[], &[]).with_attr("axes", ints(&[0])),
        vec![i64s(&[2, 2], &[1, 7, 5, 2])],
    );
    assert_exact(&y, &i64s(&[1, 2], &[5, 7]));
}

#[test]
fn reduce_over_middle_and_several_axes() {
    let x = f32s(&[2, 3, 2], &(0..12).map(|v| v as f32).collect::<Vec<_>>());
    let y = run1(
        13,
        op("ReduceSum", &[], &[]).with_attr("keepdims", int(0)),
        vec![x.clone(), i64s(&[2], &[0, 2])],
    );
    // Sum over i and k of 6i + 2j + k.
    assert_exact(&y, &f32s(&[3], &[14., 22., 30.]));
    let y = run1(
        13,
        op("ReduceMean", &[], &[]).with_attr("axes", ints(&[1])),
        vec![x],
    );
    assert_exact(&y, &f32s(&[2, 1, 2], &[2., 3., 8., 9.]));
}

#[test]
fn argmax_argmin() {
    let x = f32s(&[2, 3], &[1., 5., 5., 7., 0., 7.]);
    let y = run1(
        13,
        op("ArgMax", &[], &[]).with_attr("axis", int(1)),
        vec![x.clone()],
    );
    assert_exact(&y, &i64s(&[2, 1], &[1, 0]));
    let y = run1(
        13,
        op("ArgMax", &[], &[])
            .with_attr("axis", int(1))
            .with_attr("select_last_index", int(1))
            .with_attr("keepdims", int(0)),
        vec![x.clone()],
    );
    assert_exact(&y, &i64s(&[2], &[2, 2]));
    let y = run1(
        13,
        op("ArgMin", &[], &[]).with_attr("keepdims", int(0)),
        vec![x],
    );
    assert_exact(&y, &i64s(&[3], &[0, 1, 0]));
}

fn softmax_of(row: &[f32]) -> Vec<f32> {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = row.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn softmax_coerces_to_2d_before_opset_13() {
    let data: Vec<f32> = (0..12).map(|v| v as f32 * 0.3).collect();
    let x = f32s(&[2, 3, 2], &data);
    // Opset 11, axis 1: normalize over each flattened block of 3 x 2 = 6.
    let y = run1(11, op("Softmax", &[], &[]), vec![x.clone()]);
    let want: Vec<f32> = data.chunks(6).flat_map(softmax_of).collect();
    assert_close(&y, &f32s(&[2, 3, 2], &want), 1e-6);
    // Opset 13, axis 1: normalize over the 3 entries of axis 1 only.
    let y = run1(
        13,
        op("Softmax", &[], &[]).with_attr("axis", int(1)),
        vec![x.clone()],
    );
    let mut want = vec![0f32; 12];
    for b in 0..2 {
        for k in 0..2 {
            let col: Vec<f32> = (0..3).map(|j| data[b * 6 + j * 2 + k]).collect();
            for (j, v) in softmax_of(&col).into_iter().enumerate() {
                want[b * 6 + j * 2 + k] = v;
            }
        }
    }
    assert_close(&y, &f32s(&[2, 3, 2], &want), 1e-6);
    // Opset 13 default: last axis.
    let y = run1(13, op("Softmax", &[], &[]), vec![x.clone()]);
    let want: Vec<f32> = data.chunks(2).flat_map(softmax_of).collect();
    assert_close(&y, &f32s(&[2, 3, 2], &want), 1e-6);
    let y = run1(13, op("LogSoftmax", &[], &[]), vec![x]);
    let want: Vec<f32> = want.iter().map(|v| v.ln()).collect();
    assert_close(&y, &f32s(&[2, 3, 2], &want), 1e-5);
}

#[test]
fn softmax_of_an_all_minus_infinity_row_is_nan() {
    let x = f32s(&[2, 2], &[f32::NEG_INFINITY, f32::NEG_INFINITY, 0., 0.]);
    let y = run1(13, op("Softmax", &[], &[]), vec![x]).to_f64_vec();
    assert!(y[0].is_nan() && y[1].is_nan());
    assert_eq!(&y[2..], &[0.5, 0.5]);
}

#[test]
fn layer_normalization_outputs_and_axis() {
    let x = f32s(&[2, 2, 2], &[1., 3., 0., 4., 2., 2., -1., 1.]);
    let scale = f32s(&[2, 2], &[1., 2., 1., 2.]);
    let bias = f32s(&[2], &[0., 1.]);
    let out = run_op(
        17,
        op("LayerNormalization", &[], &[])
            .with_attr("axis", int(1))
            .with_attr("epsilon", float(0.0)),
        vec![Some(x), Some(scale), Some(bias)],
        3,
    )
    .unwrap();
    // Batch 0 block [1,3,0,4]: mean 2, var (1+1+4+4)/4 = 2.5.
    let inv = 1.0 / 2.5f32.sqrt();
    let want0 = [-inv, 2.0 * inv + 1.0, -2.0 * inv, 2.0 * 2.0 * inv + 1.0];
    // Batch 1 block [2,2,-1,1]: mean 1, var (1+1+4+0)/4 = 1.5.
    let inv1 = 1.0 / 1.5f32.sqrt();
    let want1 = [inv1, 2.0 * inv1 + 1.0, -2.0 * inv1, 1.0];
    let want: Vec<f32> = want0.iter().chain(&want1).copied().collect();
    assert_close(&out[0], &f32s(&[2, 2, 2], &want), 1e-6);
    assert_close(&out[1], &f32s(&[2, 1, 1], &[2., 1.]), 1e-7);
    assert_close(&out[2], &f32s(&[2, 1, 1], &[inv, inv1]), 1e-6);
}

#[test]
fn batch_and_instance_normalization() {
    let x = f32s(&[1, 2, 2], &[1., 2., 3., 4.]);
    let per_channel = |a: f32, b: f32| f32s(&[2], &[a, b]);
    let y = run1(
        15,
        op("BatchNormalization", &[], &[]).with_attr("epsilon", float(0.0)),
        vec![
            x.clone(),
            per_channel(2., 1.),
            per_channel(0., 10.),
            per_channel(1., 3.),
            per_channel(4., 1.),
        ],
    );
    assert_close(&y, &f32s(&[1, 2, 2], &[0., 1., 10., 11.]), 1e-6);
    let err = run_op(
        15,
        op("BatchNormalization", &[], &[]).with_attr("training_mode", int(1)),
        vec![
            Some(x.clone()),
            Some(per_channel(1., 1.)),
            Some(per_channel(0., 0.)),
            Some(per_channel(0., 0.)),
            Some(per_channel(1., 1.)),
        ],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("training"), "{err}");
    let y = run1(
        6,
        op("InstanceNormalization", &[], &[]).with_attr("epsilon", float(0.0)),
        vec![x, per_channel(1., 2.), per_channel(0., 1.)],
    );
    assert_close(&y, &f32s(&[1, 2, 2], &[-1., 1., -1., 3.]), 1e-6);
}
