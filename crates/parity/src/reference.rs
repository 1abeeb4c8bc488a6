//! The reference interpreter (`transfuse-interp`) as a parity engine.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use transfuse_interp::{Interpreter, Value};
use transfuse_ir::{Model, Tensor};

use crate::engine::Engine;
use crate::error::{ParityError, Result};

/// A model in the reference interpreter.
#[derive(Debug)]
pub struct ReferenceEngine {
    interpreter: Interpreter,
    output_names: Vec<String>,
    label: String,
}

impl ReferenceEngine {
    /// Prepares the interpreter; `label` names the model in errors.
    pub fn new(model: &Model, label: &str) -> Result<ReferenceEngine> {
        let interpreter = Interpreter::new(model).map_err(|source| ParityError::Interpreter {
            model: label.to_string(),
            source: Box::new(source),
        })?;
        let output_names = model.graph.outputs.iter().map(|v| v.name.clone()).collect();
        Ok(ReferenceEngine {
            interpreter,
            output_names,
            label: label.to_string(),
        })
    }

    fn error(&self, source: transfuse_interp::InterpError) -> ParityError {
        ParityError::Interpreter {
            model: self.label.clone(),
            source: Box::new(source),
        }
    }

    fn values(&self, inputs: &[Tensor]) -> Result<HashMap<String, Value>> {
        inputs
            .iter()
            .map(|t| {
                Ok((
                    t.name.clone(),
                    Value::from_tensor(t).map_err(|e| self.error(e))?,
                ))
            })
            .collect()
    }
}

impl Engine for ReferenceEngine {
    fn run(&mut self, inputs: &[Tensor]) -> Result<(Vec<Tensor>, Duration)> {
        let values = self.values(inputs)?;
        let start = Instant::now();
        let mut outputs = self.interpreter.run(&values).map_err(|e| self.error(e))?;
        let elapsed = start.elapsed();
        let tensors = self
            .output_names
            .iter()
            .map(|name| {
                let value = outputs
                    .remove(name)
                    .ok_or_else(|| ParityError::MissingOutput {
                        model: self.label.clone(),
                        output: name.clone(),
                    })?;
                Ok(value.to_tensor(name))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((tensors, elapsed))
    }

    fn capture(&mut self, inputs: &[Tensor], names: &[String]) -> Result<HashMap<String, Tensor>> {
        let values = self.values(inputs)?;
        let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut captured = HashMap::new();
        let mut observe = |name: &str, value: &Value| {
            if wanted.contains(name) {
                captured.insert(name.to_string(), value.to_tensor(name));
            }
        };
        let outputs = self
            .interpreter
            .run_observed(&values, &mut observe)
            .map_err(|e| self.error(e))?;
        for (name, value) in outputs {
            if wanted.contains(name.as_str()) && !captured.contains_key(&name) {
                captured.insert(name.clone(), value.to_tensor(&name));
            }
        }
        Ok(captured)
    }
}
