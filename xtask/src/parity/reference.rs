//! The reference interpreter (`transfuse-interp`) as a parity engine.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{Model, Tensor};

use super::engine::Engine;

/// A model in the reference interpreter.
pub struct ReferenceEngine {
    interpreter: Interpreter,
    output_names: Vec<String>,
}

impl ReferenceEngine {
    /// Prepares the interpreter.
    pub fn new(model: &Model) -> Result<ReferenceEngine> {
        let interpreter = Interpreter::new(model)?;
        let output_names = model.graph.outputs.iter().map(|v| v.name.clone()).collect();
        Ok(ReferenceEngine {
            interpreter,
            output_names,
        })
    }

    fn values(inputs: &[Tensor]) -> Result<HashMap<String, Value>> {
        inputs
            .iter()
            .map(|t| {
                Ok((
                    t.name.clone(),
                    Value::from_tensor(t).with_context(|| format!("input '{}'", t.name))?,
                ))
            })
            .collect()
    }
}

impl Engine for ReferenceEngine {
    fn run(&mut self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Duration)> {
        let values = Self::values(inputs)?;
        let start = Instant::now();
        let mut outputs = self.interpreter.run(&values)?;
        let elapsed = start.elapsed();
        let tensors = self
            .output_names
            .iter()
            .map(|name| {
                let value = outputs
                    .remove(name)
                    .with_context(|| format!("the interpreter did not produce output '{name}'"))?;
                Ok(value.to_tensor(name))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((tensors, elapsed))
    }

    fn capture(&mut self, inputs: &[Tensor], names: &[String]) -> Result<HashMap<String, Tensor>> {
        let values = Self::values(inputs)?;
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut captured = HashMap::new();
        let mut observe = |name: &str, value: &Value| {
            if wanted.contains(name) {
                captured.insert(name.to_string(), value.to_tensor(name));
            }
        };
        let outputs = self.interpreter.run_observed(&values, &mut observe)?;
        for (name, value) in outputs {
            if wanted.contains(name.as_str()) && !captured.contains_key(&name) {
                captured.insert(name.clone(), value.to_tensor(&name));
            }
        }
        Ok(captured)
    }
}
