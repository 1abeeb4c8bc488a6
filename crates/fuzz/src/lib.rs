//! Fuzzing support for transfuse: the properties the loader and the optimizer must keep on any
//! input, and a structural mutator of real models.
//!
//! Two properties, each a function of the fuzzer's bytes that returns the first violation:
//! - [`check_load`]: arbitrary bytes either fail to load with an error, or load into a model
//!   that encodes and decodes again (never a panic, never an abort).
//! - [`check_optimize`]: the bytes pick one of the bundled tiny models and a sequence of
//!   mutations (attributes, constants, rewired inputs, swapped ops, declared dims, opsets, see
//!   [`mutate`]). A mutated model that is still a valid graph is optimized; the optimizer
//!   may refuse it with an error, but a model it writes must be a valid graph that round-trips,
//!   and wherever the original runs in the reference interpreter, the optimized model must run
//!   and give the same outputs (NaN where the original has NaN, the same infinities, finite
//!   values within the tolerance).
//!
//! The cargo-fuzz targets in `fuzz/` call these functions and panic on a violation; the replay
//! test of this crate runs every committed finding (`regressions/<target>/`) on stable Rust.

pub mod mutate;
mod seeds;

use std::collections::HashMap;

use bytes::Bytes;
use transfuse_interp::{Interpreter, Value};
use transfuse_ir::Model;
use transfuse_rewrite::OptimizeOptions;

pub use mutate::ByteSource;
pub use seeds::SEED_MODELS;

/// A violated property.
#[derive(Debug, thiserror::Error)]
pub enum Finding {
    /// A model that loaded could not be encoded and decoded again.
    #[error("a loaded model does not round-trip: {0}")]
    RoundTrip(String),
    /// The optimizer returned a graph that breaks the IR's invariants.
    #[error("the optimized graph is invalid: {0}")]
    InvalidOutput(String),
    /// The original runs in the interpreter but the optimized model does not.
    #[error("the optimized model fails where the original runs: {0}")]
    OptimizedFails(String),
    /// The optimized model computes something else.
    #[error("output {output} differs at element {index}: original {expected}, optimized {actual}")]
    Mismatch {
        /// Graph output name.
        output: String,
        /// Flat element index.
        index: usize,
        /// The original model's value.
        expected: f64,
        /// The optimized model's value.
        actual: f64,
    },
}

/// Absolute and relative tolerance of the output comparison (`|a - e| <= ATOL + RTOL * |e|`).
/// Fused kernels reassociate float arithmetic; mutated constants can be large, hence the
/// relative term.
pub const ATOL: f64 = 1e-4;
/// See [`ATOL`].
pub const RTOL: f64 = 1e-4;

/// Loads arbitrary bytes; a model that loads must encode and decode again.
pub fn check_load(data: &[u8]) -> Result<(), Finding> {
    let Ok(model) = Model::from_bytes(Bytes::copy_from_slice(data), None) else {
        return Ok(());
    };
    let encoded = model.to_bytes();
    let again = Model::from_bytes(Bytes::from(encoded), None)
        .map_err(|e| Finding::RoundTrip(e.to_string()))?;
    if again.graph.nodes.len() != model.graph.nodes.len() {
        return Err(Finding::RoundTrip(format!(
            "{} nodes became {}",
            model.graph.nodes.len(),
            again.graph.nodes.len()
        )));
    }
    Ok(())
}

/// Mutates a bundled model as `data` directs, optimizes it and checks the result.
pub fn check_optimize(data: &[u8]) -> Result<(), Finding> {
    let mut source = ByteSource::new(data);
    let seed = &SEED_MODELS[source.below(SEED_MODELS.len())];
    let Ok(mut model) = seed.model() else {
        return Ok(());
    };
    mutate::mutate(&mut model, &mut source);
    // Mutations may break the graph's invariants (a rewired input that creates a cycle, a
    // removed definition); such a model is not a valid input, and loading would reject it.
    if model.graph.check().is_err() {
        return Ok(());
    }
    let Ok((optimized, _report)) = transfuse_rewrite::optimize(&model, &OptimizeOptions::default())
    else {
        return Ok(());
    };
    let mut checked = optimized.clone();
    checked
        .graph
        .check()
        .map_err(|e| Finding::InvalidOutput(e.to_string()))?;
    check_load(&optimized.to_bytes())?;

    let inputs = seed.inputs();
    let Some(expected) = run(&model, &inputs) else {
        return Ok(());
    };
    let actual = Interpreter::new(&optimized)
        .and_then(|i| i.run(&inputs))
        .map_err(|e| Finding::OptimizedFails(e.to_string()))?;
    compare(&expected, &actual)
}

/// The original's outputs, or `None` where the reference interpreter cannot run it (an op it
/// lacks, an invalid attribute, a shape error): then there is nothing to compare against.
fn run(model: &Model, inputs: &HashMap<String, Value>) -> Option<HashMap<String, Value>> {
    Interpreter::new(model).ok()?.run(inputs).ok()
}

fn compare(
    expected: &HashMap<String, Value>,
    actual: &HashMap<String, Value>,
) -> Result<(), Finding> {
    for (name, e) in expected {
        let a = actual
            .get(name)
            .ok_or_else(|| Finding::OptimizedFails(format!("output {name} is missing")))?;
        if a.shape() != e.shape() {
            return Err(Finding::OptimizedFails(format!(
                "output {name} has shape {:?}, the original {:?}",
                a.shape(),
                e.shape()
            )));
        }
        for (index, (x, y)) in e.to_f64_vec().into_iter().zip(a.to_f64_vec()).enumerate() {
            if !close(y, x) {
                return Err(Finding::Mismatch {
                    output: name.clone(),
                    index,
                    expected: x,
                    actual: y,
                });
            }
        }
    }
    Ok(())
}

/// Equal values (also equal infinities and NaN against NaN) or finite values within the
/// tolerance.
fn close(actual: f64, expected: f64) -> bool {
    if actual == expected || (actual.is_nan() && expected.is_nan()) {
        return true;
    }
    actual.is_finite()
        && expected.is_finite()
        && (actual - expected).abs() <= ATOL + RTOL * expected.abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closeness_treats_nan_and_infinities_exactly() {
        assert!(close(f64::NAN, f64::NAN));
        assert!(close(f64::INFINITY, f64::INFINITY));
        assert!(!close(f64::NAN, 1.0));
        assert!(!close(1.0, f64::NAN));
        assert!(!close(f64::INFINITY, 1e300));
        assert!(close(1.00005, 1.0));
        assert!(!close(1.01, 1.0));
    }

    #[test]
    fn garbage_does_not_load_and_is_not_a_finding() {
        check_load(b"\x08\x07\x12\x03abc\xff\xff").expect("an error, not a finding");
    }

    #[test]
    fn unmutated_seeds_optimize_and_match() {
        // An empty byte source picks the first seed and applies no mutation.
        for (k, seed) in SEED_MODELS.iter().enumerate() {
            let model = seed.model().expect("a bundled model loads");
            let inputs = seed.inputs();
            assert_eq!(
                inputs.len(),
                seed.inputs.len(),
                "{}: every test input decodes",
                seed.name
            );
            assert!(
                run(&model, &inputs).is_some(),
                "{}: the interpreter runs it",
                seed.name
            );
            let picked = [u8::try_from(k).expect("few seeds"), 0];
            check_optimize(&picked).expect("a seed model optimizes exactly");
        }
    }
}
