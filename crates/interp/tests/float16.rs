//! f16 values: kernels compute in f32 and round each op's output to f16; `Cast` converts to
//! and from FLOAT16 with round-to-nearest-even; the statistics outputs of the layer norms
//! stay f32.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;

use common::{ModelBuilder, f32s, int, op};
use half::f16;
use ndarray::{ArrayD, IxDyn};
use transfuse_interp::Value;

fn f16s(shape: &[usize], data: &[f32]) -> Value {
    Value::F16(
        ArrayD::from_shape_vec(
            IxDyn(shape),
            data.iter().map(|&x| f16::from_f32(x)).collect(),
        )
        .unwrap(),
    )
}

fn halves(v: &Value) -> Vec<f16> {
    match v {
        Value::F16(a) => a.iter().copied().collect(),
        other => panic!("expected f16, got {}", other.dtype()),
    }
}

#[test]
fn cast_rounds_to_nearest_even_and_overflows_to_infinity() {
    let x = [1.0 / 3.0, 7e4, 65504.0, 65520.0, 1e-8, -2.5, 2049.0, 2051.0];
    let out = ModelBuilder::new(17)
        .input("x", f32s(&[8], &x))
        .node(op("Cast", &["x"], &["h"]).with_attr("to", int(10)))
        .node(op("Cast", &["h"], &["y"]).with_attr("to", int(1)))
        .outputs(&["h", "y"])
        .run()
        .unwrap();
    let h: Vec<f32> = halves(&out[0]).iter().map(|x| x.to_f32()).collect();
    // 65520 is the rounding boundary to infinity; 2049 and 2051 are ties at spacing 2 that
    // go to the even neighbour.
    let want = [
        0.333_251_95,
        f32::INFINITY,
        65504.0,
        f32::INFINITY,
        0.0,
        -2.5,
        2048.0,
        2052.0,
    ];
    assert_eq!(h, want);
    assert_eq!(out[1], f32s(&[8], &want));
}

#[test]
fn matmul_accumulates_in_f32_and_rounds_its_output_once() {
    // 1 + 2^-11 per term: an f16 accumulator would lose every increment, f32 keeps them.
    let a = vec![1.0_f32; 16];
    let b: Vec<f32> = (0..16)
        .map(|i| if i == 0 { 1.0 } else { 2f32.powi(-11) })
        .collect();
    let out = ModelBuilder::new(17)
        .input("a", f16s(&[1, 16], &a))
        .input("b", f16s(&[16, 1], &b))
        .node(op("MatMul", &["a", "b"], &["y"]))
        .outputs(&["y"])
        .run()
        .unwrap();
    let exact: f32 = b.iter().sum();
    assert_eq!(halves(&out[0]), vec![f16::from_f32(exact)]);
    assert!(halves(&out[0])[0].to_f32() > 1.0);
}

#[test]
fn elementwise_ops_round_every_output() {
    let out = ModelBuilder::new(17)
        .input("x", f16s(&[3], &[1.0, 2.0, 3.0]))
        .input("d", f16s(&[3], &[3.0, 3.0, 7.0]))
        .node(op("Div", &["x", "d"], &["q"]))
        .node(op("Mul", &["q", "d"], &["y"]))
        .outputs(&["q", "y"])
        .run()
        .unwrap();
    let q: Vec<f16> = [1.0f32 / 3.0, 2.0 / 3.0, 3.0 / 7.0]
        .iter()
        .map(|&x| f16::from_f32(x))
        .collect();
    assert_eq!(halves(&out[0]), q);
    let y: Vec<f16> = q
        .iter()
        .zip([3.0f32, 3.0, 7.0])
        .map(|(q, d)| f16::from_f32(q.to_f32() * d))
        .collect();
    assert_eq!(halves(&out[1]), y);
}

#[test]
fn layer_norm_output_is_f16_and_its_statistics_f32() {
    let out = ModelBuilder::new(17)
        .input("x", f16s(&[1, 4], &[1.0, 2.0, 3.0, 4.0]))
        .input("s", f16s(&[4], &[1.0; 4]))
        .input("b", f16s(&[4], &[0.0; 4]))
        .node(op(
            "LayerNormalization",
            &["x", "s", "b"],
            &["y", "mean", "inv"],
        ))
        .outputs(&["y", "mean", "inv"])
        .run()
        .unwrap();
    assert_eq!(out[0].dtype(), transfuse_ir::DataType::Float16);
    assert_eq!(out[1], f32s(&[1, 1], &[2.5]));
    assert_eq!(out[2].dtype(), transfuse_ir::DataType::Float);
    let y: Vec<f32> = halves(&out[0]).iter().map(|x| x.to_f32()).collect();
    let sd = (1.25f32 + 1e-5).sqrt();
    let want: Vec<f32> = [-1.5f32, -0.5, 0.5, 1.5]
        .iter()
        .map(|d| f16::from_f32(d / sd).to_f32())
        .collect();
    assert_eq!(y, want);
}

#[test]
fn data_movement_keeps_f16_exactly() {
    let x = f16s(&[2, 2], &[0.1, -7.0, 1e-3, 60000.0]);
    let out = ModelBuilder::new(17)
        .input("x", x.clone())
        .node(op("Concat", &["x", "x"], &["c"]).with_attr("axis", int(0)))
        .node(op("Transpose", &["x"], &["t"]))
        .outputs(&["c", "t"])
        .run()
        .unwrap();
    let xs = halves(&x);
    assert_eq!(halves(&out[0]), [xs.clone(), xs.clone()].concat());
    assert_eq!(halves(&out[1]), vec![xs[0], xs[2], xs[1], xs[3]]);
    // And through an IR tensor.
    let t = x.to_tensor("x");
    assert_eq!(t.dtype, transfuse_ir::DataType::Float16);
    assert_eq!(Value::from_tensor(&t).unwrap(), x);
}
