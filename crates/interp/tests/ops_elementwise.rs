//! Element-wise ops: hand-checkable cases for broadcasting, dtypes and opset forms.
#![allow(clippy::unwrap_used, clippy::panic)]

mod common;
use common::*;

#[test]
fn add_broadcasts_numpy_style() {
    let a = f32s(&[2, 1, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = f32s(&[2, 1], &[10., 20.]);
    let y = run1(14, op("Add", &[], &[]), vec![a, b]);
    let want = f32s(
        &[2, 2, 3],
        &[11., 12., 13., 21., 22., 23., 14., 15., 16., 24., 25., 26.],
    );
    assert_exact(&y, &want);
}

#[test]
fn arithmetic_on_each_dtype() {
    let y = run1(
        14,
        op("Sub", &[], &[]),
        vec![i64s(&[3], &[5, 7, 9]), i64s(&[], &[2])],
    );
    assert_exact(&y, &i64s(&[3], &[3, 5, 7]));
    let y = run1(
        14,
        op("Mul", &[], &[]),
        vec![i32s(&[2], &[3, -4]), i32s(&[2], &[2, 2])],
    );
    assert_exact(&y, &i32s(&[2], &[6, -8]));
    let y = run1(
        14,
        op("Div", &[], &[]),
        vec![f64s(&[2], &[1.0, 3.0]), f64s(&[1], &[2.0])],
    );
    assert_exact(&y, &f64s(&[2], &[0.5, 1.5]));
    // Integer division truncates toward zero, like C.
    let y = run1(
        14,
        op("Div", &[], &[]),
        vec![i64s(&[2], &[7, -7]), i64s(&[1], &[2])],
    );
    assert_exact(&y, &i64s(&[2], &[3, -3]));
}

#[test]
fn integer_division_by_zero_is_an_error() {
    let err = run_op(
        14,
        op("Div", &[], &[]),
        vec![Some(i64s(&[1], &[1])), Some(i64s(&[1], &[0]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("division by zero"), "{err}");
}

#[test]
fn pow_with_mixed_types() {
    let y = run1(
        15,
        op("Pow", &[], &[]),
        vec![f32s(&[3], &[2., 3., 4.]), i64s(&[], &[2])],
    );
    assert_exact(&y, &f32s(&[3], &[4., 9., 16.]));
    let y = run1(
        15,
        op("Pow", &[], &[]),
        vec![f32s(&[2], &[4., 9.]), f32s(&[], &[0.5])],
    );
    assert_exact(&y, &f32s(&[2], &[2., 3.]));
}

#[test]
fn mod_follows_fmod_attribute() {
    let a = i64s(&[4], &[-7, 7, -7, 7]);
    let b = i64s(&[4], &[3, -3, -3, 3]);
    let y = run1(13, op("Mod", &[], &[]), vec![a.clone(), b.clone()]);
    assert_exact(&y, &i64s(&[4], &[2, -2, -1, 1]));
    let y = run1(
        13,
        op("Mod", &[], &[]).with_attr("fmod", int(1)),
        vec![a, b],
    );
    assert_exact(&y, &i64s(&[4], &[-1, 1, -1, 1]));
    let y = run1(
        13,
        op("Mod", &[], &[]).with_attr("fmod", int(1)),
        vec![f32s(&[1], &[-5.5]), f32s(&[1], &[2.0])],
    );
    assert_exact(&y, &f32s(&[1], &[-1.5]));
}

#[test]
fn comparisons_and_logic_give_bools() {
    let a = f32s(&[4], &[1., 2., 3., f32::NAN]);
    let b = f32s(&[], &[2.]);
    let cases = [
        ("Equal", [false, true, false, false]),
        ("Less", [true, false, false, false]),
        ("Greater", [false, false, true, false]),
        ("LessOrEqual", [true, true, false, false]),
        ("GreaterOrEqual", [false, true, true, false]),
    ];
    for (name, want) in cases {
        let y = run1(16, op(name, &[], &[]), vec![a.clone(), b.clone()]);
        assert_exact(&y, &bools(&[4], &want));
    }
    let p = bools(&[4], &[true, true, false, false]);
    let q = bools(&[4], &[true, false, true, false]);
    assert_exact(
        &run1(7, op("And", &[], &[]), vec![p.clone(), q.clone()]),
        &bools(&[4], &[true, false, false, false]),
    );
    assert_exact(
        &run1(7, op("Or", &[], &[]), vec![p.clone(), q.clone()]),
        &bools(&[4], &[true, true, true, false]),
    );
    assert_exact(
        &run1(7, op("Xor", &[], &[]), vec![p.clone(), q]),
        &bools(&[4], &[false, true, true, false]),
    );
    assert_exact(
        &run1(7, op("Not", &[], &[]), vec![p]),
        &bools(&[4], &[false, false, true, true]),
    );
}

#[test]
fn where_broadcasts_all_three_inputs() {
    let c = bools(&[2, 1], &[true, false]);
    let x = f32s(&[3], &[1., 2., 3.]);
    let y = f32s(&[], &[-1.]);
    let out = run1(16, op("Where", &[], &[]), vec![c, x, y]);
    assert_exact(&out, &f32s(&[2, 3], &[1., 2., 3., -1., -1., -1.]));
}

#[test]
fn unary_math_matches_std() {
    let xs = [-2.5f32, -0.5, 0.0, 0.5, 1.5, 2.5];
    let x = f32s(&[6], &xs);
    let check = |name: &str, f: fn(f32) -> f32| {
        let y = run1(13, op(name, &[], &[]), vec![x.clone()]);
        let want = f32s(&[6], &xs.map(f));
        assert_close(&y, &want, 1e-6);
    };
    check("Neg", |v| -v);
    check("Abs", f32::abs);
    check("Exp", f32::exp);
    check("Tanh", f32::tanh);
    check("Floor", f32::floor);
    check("Ceil", f32::ceil);
    check("Relu", |v| v.max(0.0));
    check("Sigmoid", |v| 1.0 / (1.0 + (-v).exp()));
    check("Erf", libm_erf);
    check("Sin", f32::sin);
    // Round is half to even.
    check("Round", |v| v.round_ties_even());
    check("Sign", |v| {
        if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            0.0
        }
    });
    let y = run1(13, op("Sqrt", &[], &[]), vec![f32s(&[3], &[0., 4., 9.])]);
    assert_exact(&y, &f32s(&[3], &[0., 2., 3.]));
    let y = run1(13, op("Reciprocal", &[], &[]), vec![f32s(&[2], &[2., 4.])]);
    assert_exact(&y, &f32s(&[2], &[0.5, 0.25]));
    let y = run1(13, op("Log", &[], &[]), vec![f32s(&[1], &[1.0])]);
    assert_exact(&y, &f32s(&[1], &[0.0]));
}

/// Erf via its series, independent of the implementation under test.
fn libm_erf(x: f32) -> f32 {
    let x = f64::from(x);
    let mut sum = 0.0;
    let mut term = x;
    for n in 0..60 {
        sum += term / (2 * n + 1) as f64;
        term *= -x * x / (n + 1) as f64;
    }
    (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
}

#[test]
fn activations_with_attributes() {
    let x = f32s(&[4], &[-2., -0.5, 0.5, 2.]);
    let y = run1(
        16,
        op("LeakyRelu", &[], &[]).with_attr("alpha", float(0.1)),
        vec![x.clone()],
    );
    assert_close(&y, &f32s(&[4], &[-0.2, -0.05, 0.5, 2.]), 1e-7);
    let y = run1(6, op("HardSigmoid", &[], &[]), vec![x.clone()]);
    assert_close(&y, &f32s(&[4], &[0.1, 0.4, 0.6, 0.9]), 1e-7);
    let y = run1(
        6,
        op("Elu", &[], &[]).with_attr("alpha", float(2.0)),
        vec![x.clone()],
    );
    assert_close(
        &y,
        &f32s(
            &[4],
            &[
                2.0 * ((-2f32).exp() - 1.0),
                2.0 * ((-0.5f32).exp() - 1.0),
                0.5,
                2.,
            ],
        ),
        1e-6,
    );
    // ONNX Gelu (opset 20), exact and tanh.
    let exact = run1(20, op("Gelu", &[], &[]), vec![x.clone()]);
    let want: Vec<f32> = [-2f32, -0.5, 0.5, 2.]
        .iter()
        .map(|&v| 0.5 * v * (1.0 + libm_erf(v / 2f32.sqrt())))
        .collect();
    assert_close(&exact, &f32s(&[4], &want), 1e-6);
    let tanh = run1(
        20,
        op("Gelu", &[], &[]).with_attr("approximate", string("tanh")),
        vec![x],
    );
    let want: Vec<f32> = [-2f32, -0.5, 0.5, 2.]
        .iter()
        .map(|&v| {
            0.5 * v
                * (1.0 + ((2.0 / std::f32::consts::PI).sqrt() * (v + 0.044715 * v * v * v)).tanh())
        })
        .collect();
    assert_close(&tanh, &f32s(&[4], &want), 1e-6);
}

#[test]
fn isnan_isinf() {
    let x = f32s(&[4], &[1.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY]);
    assert_exact(
        &run1(13, op("IsNaN", &[], &[]), vec![x.clone()]),
        &bools(&[4], &[false, true, false, false]),
    );
    assert_exact(
        &run1(10, op("IsInf", &[], &[]), vec![x.clone()]),
        &bools(&[4], &[false, false, true, true]),
    );
    let pos_only = op("IsInf", &[], &[]).with_attr("detect_negative", int(0));
    assert_exact(
        &run1(10, pos_only, vec![x]),
        &bools(&[4], &[false, false, true, false]),
    );
}

#[test]
fn clip_attributes_before_opset_11_inputs_after() {
    let x = f32s(&[4], &[-2., -0.5, 0.5, 2.]);
    let y = run1(
        6,
        op("Clip", &[], &[])
            .with_attr("min", float(-1.0))
            .with_attr("max", float(1.0)),
        vec![x.clone()],
    );
    assert_exact(&y, &f32s(&[4], &[-1., -0.5, 0.5, 1.]));
    let y = run_op(
        13,
        op("Clip", &[], &[]),
        vec![Some(x.clone()), None, Some(f32s(&[], &[0.0]))],
        1,
    )
    .unwrap();
    assert_exact(&y[0], &f32s(&[4], &[-2., -0.5, 0., 0.]));
    let y = run_op(
        13,
        op("Clip", &[], &[]),
        vec![Some(i64s(&[3], &[-5, 0, 5])), Some(i64s(&[], &[-1])), None],
        1,
    )
    .unwrap();
    assert_exact(&y[0], &i64s(&[3], &[-1, 0, 5]));
}

#[test]
fn variadic_max_min_sum_mean() {
    let a = f32s(&[3], &[1., 5., 3.]);
    let b = f32s(&[1], &[2.]);
    let c = f32s(&[3], &[0., 0., 9.]);
    let node = |name: &str| op(name, &[], &[]);
    assert_exact(
        &run1(13, node("Max"), vec![a.clone(), b.clone(), c.clone()]),
        &f32s(&[3], &[2., 5., 9.]),
    );
    assert_exact(
        &run1(13, node("Min"), vec![a.clone(), b.clone(), c.clone()]),
        &f32s(&[3], &[0., 0., 2.]),
    );
    assert_exact(
        &run1(13, node("Sum"), vec![a.clone(), b.clone(), c.clone()]),
        &f32s(&[3], &[3., 7., 14.]),
    );
    assert_close(
        &run1(13, node("Mean"), vec![a, b, c]),
        &f32s(&[3], &[1., 7. / 3., 14. / 3.]),
        1e-6,
    );
    // Max propagates NaN.
    let y = run1(
        13,
        node("Max"),
        vec![f32s(&[2], &[f32::NAN, 1.]), f32s(&[2], &[0., 2.])],
    );
    assert!(y.to_f64_vec()[0].is_nan());
}

#[test]
fn cast_between_all_supported_types() {
    let x = f32s(&[4], &[-1.7, 0.0, 2.9, 3.0]);
    let to = |t: i64| op("Cast", &[], &[]).with_attr("to", int(t));
    assert_exact(
        &run1(13, to(7), vec![x.clone()]),
        &i64s(&[4], &[-1, 0, 2, 3]),
    );
    assert_exact(
        &run1(13, to(6), vec![x.clone()]),
        &i32s(&[4], &[-1, 0, 2, 3]),
    );
    assert_exact(
        &run1(13, to(9), vec![x.clone()]),
        &bools(&[4], &[true, false, true, true]),
    );
    assert_close(
        &run1(13, to(11), vec![x]),
        &f64s(&[4], &[-1.7, 0.0, 2.9, 3.0]),
        1e-6,
    );
    assert_exact(
        &run1(13, to(1), vec![bools(&[2], &[true, false])]),
        &f32s(&[2], &[1., 0.]),
    );
    // Narrowing integers wraps, as C++ static_cast does.
    assert_exact(
        &run1(13, to(6), vec![i64s(&[1], &[1 << 32 | 5])]),
        &i32s(&[1], &[5]),
    );
    let like = run1(
        15,
        op("CastLike", &[], &[]),
        vec![i32s(&[2], &[1, 2]), f64s(&[], &[0.0])],
    );
    assert_exact(&like, &f64s(&[2], &[1.0, 2.0]));
}

#[test]
fn cast_to_unsupported_type_is_rejected_when_preparing() {
    let err = run_op(
        13,
        // bfloat16: f16 (10) is supported since the interpreter holds f16 values.
        op("Cast", &[], &[]).with_attr("to", int(16)),
        vec![Some(f32s(&[1], &[1.0]))],
        1,
    )
    .unwrap_err();
    assert!(err.to_string().contains("bf16"), "{err}");
}

#[test]
fn prelu_slope_broadcasts() {
    let x = f32s(&[2, 2], &[-1., 1., -2., 2.]);
    let slope = f32s(&[2], &[0.5, 0.25]);
    let y = run1(16, op("PRelu", &[], &[]), vec![x, slope]);
    assert_exact(&y, &f32s(&[2, 2], &[-0.5, 1., -1.0, 2.]));
}

#[test]
fn in_place_reuse_gives_the_same_result_as_fresh_buffers() {
    // `t = a + b` is read only by `u = t * c`, so `u` may reuse `t`'s buffer; `t` is also a
    // graph output in the second model, so there it must not be reused.
    let a = f32s(&[2, 3], &pseudo_random(6, 1));
    let b = f32s(&[3], &pseudo_random(3, 2));
    let c = f32s(&[2, 1], &pseudo_random(2, 3));
    let build = |outputs: &[&str]| {
        ModelBuilder::new(14)
            .input("a", a.clone())
            .input("b", b.clone())
            .input("c", c.clone())
            .node(op("Add", &["a", "b"], &["t"]))
            .node(op("Mul", &["t", "c"], &["u"]))
            .outputs(outputs)
            .run()
            .unwrap()
    };
    let only_u = build(&["u"]);
    let both = build(&["u", "t"]);
    assert_exact(&only_u[0], &both[0]);
    let av = a.to_f64_vec();
    let bv = b.to_f64_vec();
    let cv = c.to_f64_vec();
    let t: Vec<f64> = (0..6)
        .map(|i| (av[i] as f32 + bv[i % 3] as f32) as f64)
        .collect();
    assert_close(&both[1], &f64s(&[2, 3], &t), 0.0);
    let u: Vec<f32> = (0..6).map(|i| t[i] as f32 * cv[i / 3] as f32).collect();
    assert_close(&only_u[0], &f32s(&[2, 3], &u), 0.0);
}

#[test]
fn broadcast_fast_paths_agree_with_loops_in_both_operand_orders() {
    // Large enough for the parallel paths; the small operand is a repeating row or a scalar.
    let (rows, cols) = (40, 1000);
    let big = pseudo_random(rows * cols, 11);
    let row = pseudo_random(cols, 12);
    let scalar = 0.75f32;
    let want_row: Vec<f32> = (0..rows * cols).map(|i| big[i] - row[i % cols]).collect();
    let want_row_rev: Vec<f32> = (0..rows * cols).map(|i| row[i % cols] - big[i]).collect();
    let want_scalar: Vec<f32> = big.iter().map(|v| v - scalar).collect();
    let sub = || op("Sub", &[], &[]);
    let x = f32s(&[1, rows, cols], &big);
    let r = f32s(&[1, 1, cols], &row);
    let s = f32s(&[], &[scalar]);
    assert_exact(
        &run1(14, sub(), vec![x.clone(), r.clone()]),
        &f32s(&[1, rows, cols], &want_row),
    );
    assert_exact(
        &run1(14, sub(), vec![r.clone(), x.clone()]),
        &f32s(&[1, rows, cols], &want_row_rev),
    );
    assert_exact(
        &run1(14, sub(), vec![x.clone(), s.clone()]),
        &f32s(&[1, rows, cols], &want_scalar),
    );
    // In place: the big operand is produced by an earlier node and read only here.
    let out = ModelBuilder::new(14)
        .input("x", x.clone())
        .input("r", r)
        .input("s", s)
        .node(op("Identity", &["x"], &["x1"]))
        .node(op("Neg", &["x1"], &["n"]))
        .node(op("Sub", &["n", "r"], &["a"]))
        .node(op("Neg", &["x1"], &["m"]))
        .node(op("Sub", &["s", "m"], &["b"]))
        .outputs(&["a", "b"])
        .run()
        .unwrap();
    let want_a: Vec<f32> = (0..rows * cols).map(|i| -big[i] - row[i % cols]).collect();
    let want_b: Vec<f32> = big.iter().map(|v| scalar + v).collect();
    assert_exact(&out[0], &f32s(&[1, rows, cols], &want_a));
    assert_exact(&out[1], &f32s(&[1, rows, cols], &want_b));
}
