//! `MatMul` (numpy semantics) and `Gemm` against naive loops.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use common::*;

/// Naive batched product of row-major [batch, m, k] x [batch, k, n] (batch broadcast by
/// the given index maps).
fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, pairs: &[(usize, usize)]) -> Vec<f32> {
    let mut out = Vec::new();
    for &(ia, ib) in pairs {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0f64;
                for p in 0..k {
                    acc +=
                        f64::from(a[ia * m * k + i * k + p]) * f64::from(b[ib * k * n + p * n + j]);
                }
                out.push(acc as f32);
            }
        }
    }
    out
}

#[test]
fn matmul_shapes_follow_numpy() {
    let a = pseudo_random(6, 1);
    let b = pseudo_random(12, 2);
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![f32s(&[2, 3], &a), f32s(&[3, 4], &b)],
    );
    assert_close(&y, &f32s(&[2, 4], &naive(&a, &b, 2, 3, 4, &[(0, 0)])), 1e-6);
    // 1-D on the left: [3] x [3, 4] -> [4].
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![f32s(&[3], &a[..3]), f32s(&[3, 4], &b)],
    );
    assert_close(
        &y,
        &f32s(&[4], &naive(&a[..3], &b, 1, 3, 4, &[(0, 0)])),
        1e-6,
    );
    // 1-D on the right: [2, 3] x [3] -> [2].
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![f32s(&[2, 3], &a), f32s(&[3], &b[..3])],
    );
    assert_close(
        &y,
        &f32s(&[2], &naive(&a, &b[..3], 2, 3, 1, &[(0, 0)])),
        1e-6,
    );
    // Both 1-D: a scalar.
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![f32s(&[3], &a[..3]), f32s(&[3], &b[..3])],
    );
    assert_eq!(y.shape(), &[] as &[usize]);
    // Broadcast batch dims: [2, 1, 2, 3] x [3, 3, 2] -> [2, 3, 2, 2].
    let a = pseudo_random(12, 3);
    let b = pseudo_random(18, 4);
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![f32s(&[2, 1, 2, 3], &a), f32s(&[3, 3, 2], &b)],
    );
    let pairs: Vec<(usize, usize)> = (0..2).flat_map(|i| (0..3).map(move |j| (i, j))).collect();
    assert_close(
        &y,
        &f32s(&[2, 3, 2, 2], &naive(&a, &b, 2, 3, 2, &pairs)),
        1e-6,
    );
    // A batched left operand against one matrix (the folded fast path).
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![f32s(&[2, 2, 3], &a), f32s(&[3, 2], &b[..6])],
    );
    assert_close(
        &y,
        &f32s(&[2, 2, 2], &naive(&a, &b[..6], 2, 3, 2, &[(0, 0), (1, 0)])),
        1e-6,
    );
    // Integers.
    let y = run1(
        13,
        op("MatMul", &[], &[]),
        vec![i64s(&[1, 2], &[2, 3]), i64s(&[2, 1], &[4, 5])],
    );
    assert_exact(&y, &i64s(&[1, 1], &[23]));
    let err = run_op(
        13,
        op("MatMul", &[], &[]),
        vec![Some(f32s(&[2, 3], &a[..6])), Some(f32s(&[2, 3], &a[..6]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("inner dims"), "{err}");
}

#[test]
fn matmul_on_a_transposed_operand() {
    // K comes out of Transpose as a strided view; the product must use logical order.
    let k = pseudo_random(8, 5);
    let q = pseudo_random(8, 6);
    let out = ModelBuilder::new(13)
        .input("q", f32s(&[2, 4], &q))
        .input("k", f32s(&[2, 4], &k))
        .node(op("Transpose", &["k"], &["kt"]))
        .node(op("MatMul", &["q", "kt"], &["y"]))
        .outputs(&["y"])
        .run()
        .unwrap();
    let mut kt = vec![0f32; 8];
    for i in 0..2 {
        for j in 0..4 {
            kt[j * 2 + i] = k[i * 4 + j];
        }
    }
    assert_close(
        &out[0],
        &f32s(&[2, 2], &naive(&q, &kt, 2, 4, 2, &[(0, 0)])),
        1e-6,
    );
}

#[test]
fn gemm_attributes() {
    let a = pseudo_random(6, 7); // stored as [3, 2], used transposed as [2, 3]
    let b = pseudo_random(12, 8); // stored as [4, 3], used transposed as [3, 4]
    let c = pseudo_random(4, 9);
    let node = op("Gemm", &[], &[])
        .with_attr("transA", int(1))
        .with_attr("transB", int(1))
        .with_attr("alpha", float(0.5))
        .with_attr("beta", float(2.0));
    let y = run1(
        13,
        node,
        vec![f32s(&[3, 2], &a), f32s(&[4, 3], &b), f32s(&[4], &c)],
    );
    let mut at = vec![0f32; 6];
    let mut bt = vec![0f32; 12];
    for i in 0..3 {
        for j in 0..2 {
            at[j * 3 + i] = a[i * 2 + j];
        }
    }
    for i in 0..4 {
        for j in 0..3 {
            bt[j * 4 + i] = b[i * 3 + j];
        }
    }
    let prod = naive(&at, &bt, 2, 3, 4, &[(0, 0)]);
    let want: Vec<f32> = prod
        .iter()
        .enumerate()
        .map(|(i, v)| 0.5 * v + 2.0 * c[i % 4])
        .collect();
    assert_close(&y, &f32s(&[2, 4], &want), 1e-6);
    // No C (opset 11+), defaults alpha = beta = 1.
    let y = run_op(
        13,
        op("Gemm", &[], &[]),
        vec![Some(f32s(&[2, 3], &at)), Some(f32s(&[3, 4], &bt)), None],
        1,
    )
    .unwrap();
    assert_close(&y[0], &f32s(&[2, 4], &prod), 1e-6);
}
