//! Comparing tensors: max absolute and relative error, pass/fail under a tolerance, top-1
//! agreement of classification logits, and the first diverging intermediate value.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use transfuse_ir::{Model, Tensor};

/// Elementwise acceptance: `|actual - expected| <= atol + rtol * |expected|` (numpy's
/// `allclose`). Equal values pass, including equal infinities and NaN against NaN.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Tolerance {
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance.
    pub rtol: f64,
}

impl Tolerance {
    /// Only equal values pass.
    pub const EXACT: Tolerance = Tolerance {
        atol: 0.0,
        rtol: 0.0,
    };

    /// The tolerance of an fp16 candidate against its f32 original: `atol = rtol = 1e-2`.
    ///
    /// Derived from measurements, not from a wish: fp16 rounds each stored value to
    /// 2^-11 relative (4.9e-4), and errors add up over layers. On the 25 tiny test models
    /// (BERT, DistilBERT, RoBERTa, RoFormer, T5 encoder, ViT, DINOv2, timm ViT; two layers;
    /// optimized, then converted by `transfuse_rewrite::to_float16`) the largest absolute
    /// difference from the f32 original is 4.5e-3 in the reference interpreter and 3.4e-3
    /// in ONNX Runtime's CPU provider, on outputs of magnitude up to about 4 (normalized
    /// hidden states) with top-1 agreement 100% on the classifiers. `1e-2 + 1e-2 * |expected|`
    /// leaves a factor of two over the worst of them (real all-MiniLM-L6-v2 weights on real
    /// sentences: 2.3e-2 on elements up to about 10, inside it too, see `docs/parity.md`); a conversion error (a weight left
    /// unconverted reads as garbage, a wrong cast, a mask clamped to a finite value that
    /// leaks) is orders of magnitude larger.
    pub const fn float16() -> Tolerance {
        Tolerance {
            atol: 1e-2,
            rtol: 1e-2,
        }
    }

    /// An absolute tolerance alone.
    pub const fn absolute(atol: f64) -> Tolerance {
        Tolerance { atol, rtol: 0.0 }
    }

    /// Whether one element is close enough.
    pub fn accepts(&self, actual: f64, expected: f64) -> bool {
        let error = element_error(actual, expected);
        error == 0.0 || error <= self.atol + self.rtol * expected.abs()
    }
}

/// True when `model` computes in fp16: it holds fp16 initializers or casts to fp16 (a
/// model converted by `transfuse optimize --float16`). Its parity against an f32 original
/// is then judged with [`Tolerance::float16`].
pub fn computes_in_float16(model: &Model) -> bool {
    let f16 = i64::from(transfuse_ir::DataType::Float16.code());
    model
        .graph
        .initializers
        .values()
        .any(|t| t.dtype == transfuse_ir::DataType::Float16)
        || model
            .graph
            .nodes
            .iter()
            .any(|n| n.op_type == "Cast" && n.attr_int("to") == Some(f16))
}

/// `|actual - expected|`, 0 for equal values (also equal infinities, NaN vs NaN), infinite
/// when only one side is NaN.
fn element_error(actual: f64, expected: f64) -> f64 {
    if actual == expected || (actual.is_nan() && expected.is_nan()) {
        0.0
    } else {
        let d = (actual - expected).abs();
        if d.is_nan() { f64::INFINITY } else { d }
    }
}

/// The comparison of one tensor with its expected value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TensorComparison {
    /// The value's name.
    pub name: String,
    /// Largest `|actual - expected|`.
    pub max_abs: f64,
    /// Largest `|actual - expected| / |expected|` over elements whose expected value is not 0.
    pub max_rel: f64,
    /// Every element within the tolerance (and shapes equal).
    pub pass: bool,
    /// For classification logits (2-D `[batch, classes]` floats): the fraction of rows whose
    /// arg-max agrees.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_agreement: Option<f64>,
    /// Why the tensors could not be compared elementwise (shapes differ, unreadable data).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl TensorComparison {
    fn failed(name: &str, problem: String) -> TensorComparison {
        TensorComparison {
            name: name.to_string(),
            max_abs: f64::INFINITY,
            max_rel: f64::INFINITY,
            pass: false,
            top1_agreement: None,
            problem: Some(problem),
        }
    }
}

/// Compares `actual` with `expected` (shapes must match; element types may differ).
pub fn compare_tensors(
    name: &str,
    actual: &Tensor,
    expected: &Tensor,
    tolerance: Tolerance,
) -> TensorComparison {
    if actual.dims != expected.dims {
        return TensorComparison::failed(
            name,
            format!("shape {:?}, expected {:?}", actual.dims, expected.dims),
        );
    }
    let (a, e) = match (actual.to_f64_vec(), expected.to_f64_vec()) {
        (Ok(a), Ok(e)) => (a, e),
        (Err(err), _) | (_, Err(err)) => return TensorComparison::failed(name, err.to_string()),
    };
    let mut max_abs: f64 = 0.0;
    let mut max_rel: f64 = 0.0;
    let mut pass = true;
    for (&x, &y) in a.iter().zip(&e) {
        let err = element_error(x, y);
        max_abs = max_abs.max(err);
        if y != 0.0 && err > 0.0 {
            max_rel = max_rel.max(err / y.abs());
        }
        pass &= tolerance.accepts(x, y);
    }
    let top1_agreement =
        if actual.dims.len() == 2 && actual.dims[1] > 1 && expected.dtype.is_float() {
            top1_agreement(&a, &e, actual.dims[1] as usize)
        } else {
            None
        };
    TensorComparison {
        name: name.to_string(),
        max_abs,
        max_rel,
        pass,
        top1_agreement,
        problem: None,
    }
}

/// Largest `|actual - expected|` over all elements (0 for equal values, equal infinities and
/// NaN against NaN; infinite where only one side is NaN, and when shapes or element data do
/// not compare): the same measure as [`TensorComparison::max_abs`].
pub fn max_abs_diff(actual: &Tensor, expected: &Tensor) -> f64 {
    compare_tensors(&expected.name, actual, expected, Tolerance::EXACT).max_abs
}

/// The fraction of rows (of `classes` values each) whose first arg-max agrees.
pub fn top1_agreement(actual: &[f64], expected: &[f64], classes: usize) -> Option<f64> {
    if classes == 0 || actual.len() != expected.len() || actual.is_empty() {
        return None;
    }
    let argmax = |row: &[f64]| {
        row.iter()
            .enumerate()
            .fold((0, f64::NEG_INFINITY), |best, (i, &v)| {
                if v > best.1 { (i, v) } else { best }
            })
            .0
    };
    let rows = actual.len() / classes;
    let agree = actual
        .chunks(classes)
        .zip(expected.chunks(classes))
        .filter(|(a, e)| argmax(a) == argmax(e))
        .count();
    Some(agree as f64 / rows as f64)
}

/// Values computed by nodes of both graphs under the same name, in `model`'s topological
/// order: the points where two versions of a model can be compared inside.
pub fn shared_intermediates(model: &Model, candidate: &Model) -> Vec<String> {
    let candidate_values: HashSet<&str> = candidate
        .graph
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter())
        .map(String::as_str)
        .collect();
    let mut seen = HashSet::new();
    model
        .graph
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter())
        .filter(|o| {
            !o.is_empty() && candidate_values.contains(o.as_str()) && seen.insert(o.as_str())
        })
        .cloned()
        .collect()
}

/// The first value of `order` present in both maps whose candidate value is not within
/// `tolerance` of the model's.
pub fn first_divergence(
    order: &[String],
    model_values: &HashMap<String, Tensor>,
    candidate_values: &HashMap<String, Tensor>,
    tolerance: Tolerance,
) -> Option<TensorComparison> {
    order.iter().find_map(|name| {
        let expected = model_values.get(name)?;
        let actual = candidate_values.get(name)?;
        let comparison = compare_tensors(name, actual, expected, tolerance);
        (!comparison.pass).then_some(comparison)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    const TIGHT: Tolerance = Tolerance {
        atol: 1e-4,
        rtol: 0.0,
    };

    fn t(values: &[f32]) -> Tensor {
        Tensor::from_f32("t", vec![values.len() as i64], values)
    }

    #[test]
    fn errors_and_verdicts() {
        let c = compare_tensors(
            "x",
            &t(&[1.0, 2.0, -4.0]),
            &t(&[1.0, 2.00005, -4.001]),
            TIGHT,
        );
        assert!((c.max_abs - 1e-3).abs() < 1e-6, "{c:?}");
        assert!((c.max_rel - 2.5e-4).abs() < 1e-6, "{c:?}");
        assert!(!c.pass);
        assert!(compare_tensors("x", &t(&[1.0, 2.0]), &t(&[1.0, 2.00005]), TIGHT).pass);
        let relative = Tolerance {
            atol: 0.0,
            rtol: 1e-3,
        };
        assert!(compare_tensors("x", &t(&[1000.0]), &t(&[1000.5]), relative).pass);
        assert!(!compare_tensors("x", &t(&[1.0]), &t(&[1.5]), relative).pass);
    }

    #[test]
    fn special_values() {
        let inf = f32::INFINITY;
        assert!(compare_tensors("x", &t(&[-inf, f32::NAN]), &t(&[-inf, f32::NAN]), TIGHT).pass);
        let c = compare_tensors("x", &t(&[f32::NAN]), &t(&[0.0]), TIGHT);
        assert!(!c.pass && c.max_abs.is_infinite());
        assert!(!compare_tensors("x", &t(&[inf]), &t(&[-inf]), TIGHT).pass);
        // An expected zero counts in the absolute error only.
        let c = compare_tensors("x", &t(&[1e-5]), &t(&[0.0]), TIGHT);
        assert!(c.pass && c.max_rel == 0.0);
    }

    #[test]
    fn shapes_must_match() {
        let c = compare_tensors(
            "x",
            &t(&[1.0, 2.0]),
            &Tensor::from_f32("t", vec![2, 1], &[1.0, 2.0]),
            TIGHT,
        );
        assert!(!c.pass);
        assert_eq!(c.problem.as_deref(), Some("shape [2], expected [2, 1]"));
        assert!(
            max_abs_diff(
                &t(&[1.0, 2.0]),
                &Tensor::from_f32("t", vec![2, 1], &[1.0, 2.0])
            )
            .is_infinite()
        );
    }

    #[test]
    fn max_abs_diff_is_the_largest_error() {
        assert_eq!(
            max_abs_diff(&t(&[1.0, 2.0, 3.0]), &t(&[1.0, 2.5, 2.75])),
            0.5
        );
        assert_eq!(max_abs_diff(&t(&[f32::NAN]), &t(&[f32::NAN])), 0.0);
        assert!(max_abs_diff(&t(&[f32::NAN]), &t(&[1.0])).is_infinite());
    }

    #[test]
    fn top1_agreement_of_logits() {
        let actual = Tensor::from_f32(
            "l",
            vec![3, 3],
            &[0.1, 0.9, 0.0, 0.5, 0.2, 0.1, 0.0, 0.0, 1.0],
        );
        let expected = Tensor::from_f32(
            "l",
            vec![3, 3],
            &[0.2, 0.8, 0.0, 0.1, 0.6, 0.1, 0.0, 0.1, 0.9],
        );
        let c = compare_tensors("logits", &actual, &expected, TIGHT);
        assert_eq!(c.top1_agreement, Some(2.0 / 3.0));
        let hidden = Tensor::from_f32("h", vec![1, 2, 2], &[0.0; 4]);
        assert_eq!(
            compare_tensors("h", &hidden, &hidden, TIGHT).top1_agreement,
            None
        );
    }

    #[test]
    fn the_first_diverging_value_in_order_is_named() {
        let order: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let model: HashMap<String, Tensor> = [("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0)]
            .iter()
            .map(|&(n, v)| (n.to_string(), t(&[v])))
            .collect();
        let mut candidate = model.clone();
        candidate.remove("a");
        candidate.insert("c".into(), t(&[3.5]));
        candidate.insert("d".into(), t(&[4.5]));
        let found = first_divergence(&order, &model, &candidate, TIGHT).expect("divergence");
        assert_eq!(found.name, "c");
        candidate.insert("c".into(), t(&[3.0]));
        candidate.insert("d".into(), t(&[4.0]));
        assert_eq!(first_divergence(&order, &model, &candidate, TIGHT), None);
    }
}
