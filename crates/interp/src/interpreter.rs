//! The interpreter: a graph prepared once (kernels built, initializers converted, a
//! schedule that frees every intermediate after its last reader), run many times.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::OnceLock;

use transfuse_ir::{DataType, Dim, Model};

use crate::error::{InterpError, OpError};
use crate::registry::{Arg, BuildCtx, Inputs, Kernel, ONNX, Registry, canonical_domain};
use crate::value::Value;

/// One op the interpreter implements.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpSupport {
    /// Domain (`""` for ONNX, `com.microsoft` for ONNX Runtime's contrib ops).
    pub domain: String,
    /// Operator type.
    pub op_type: String,
    /// The opset versions of that domain the implementation follows.
    pub opsets: RangeInclusive<i64>,
}

/// Every op the interpreter implements, sorted by domain and op type.
pub fn supported_ops() -> Vec<OpSupport> {
    registry()
        .list()
        .into_iter()
        .map(|(domain, op_type, opsets)| OpSupport {
            domain,
            op_type,
            opsets,
        })
        .collect()
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut reg = Registry::default();
        crate::ops::register_all(&mut reg);
        reg
    })
}

/// Where a node input comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    /// An initializer or a `Constant` node's value (kept for the interpreter's lifetime).
    Constant(usize),
    /// A graph input given to `run`.
    Input(usize),
    /// A value computed by an earlier step, held in a slot while it has readers.
    Slot(usize),
}

#[derive(Debug)]
enum StepKind {
    /// Run a kernel.
    Kernel(Box<dyn Kernel>),
    /// A `Constant` node, evaluated while preparing: running it only reports the value.
    Constant(usize),
}

/// One node of the schedule.
#[derive(Debug)]
struct Step {
    label: String,
    op_type: String,
    kind: StepKind,
    /// Per node input: its source, `None` for an omitted optional input.
    inputs: Vec<Option<Source>>,
    /// Per node input: true when this step is the value's last reader, so the kernel may
    /// take its buffer.
    movable: Vec<bool>,
    /// Per node output: its slot, `None` for an omitted optional output.
    outputs: Vec<Option<usize>>,
    output_names: Vec<String>,
    /// Slots to drop once this step has run (inputs read for the last time, outputs nobody
    /// reads).
    free_after: Vec<usize>,
}

/// A declared graph input.
#[derive(Debug)]
struct InputSpec {
    name: String,
    elem_type: Option<DataType>,
    shape: Option<Vec<Dim>>,
    /// The initializer of the same name, used when the caller gives no value.
    default: Option<usize>,
}

/// A model prepared for execution.
///
/// Preparing converts the initializers to arrays once, builds one kernel per node (so
/// unsupported ops and bad attributes are reported before anything runs) and plans when
/// each intermediate value can be dropped. Running is `&self`: one prepared interpreter
/// can serve several threads.
#[derive(Debug)]
pub struct Interpreter {
    steps: Vec<Step>,
    constants: Vec<Value>,
    inputs: Vec<InputSpec>,
    outputs: Vec<(String, Source)>,
    slot_count: usize,
}

impl Interpreter {
    /// Prepares `model`. Errors on an op without a kernel (naming op, domain and opset),
    /// invalid attributes, and initializers the interpreter cannot hold.
    pub fn new(model: &Model) -> Result<Interpreter, InterpError> {
        let graph = &model.graph;
        let mut sources: HashMap<String, Source> = HashMap::new();
        let mut constants = Vec::new();
        let input_names: HashSet<&str> = graph.inputs.iter().map(|v| v.name.as_str()).collect();

        for (name, tensor) in &graph.initializers {
            constants.push(Value::from_tensor(tensor)?);
            if !input_names.contains(name.as_str()) {
                sources.insert(name.clone(), Source::Constant(constants.len() - 1));
            }
        }
        let mut inputs = Vec::new();
        for (i, vi) in graph.inputs.iter().enumerate() {
            let default = graph.initializers.get_index_of(&vi.name);
            inputs.push(InputSpec {
                name: vi.name.clone(),
                elem_type: vi.elem_type(),
                shape: vi.shape().map(<[Dim]>::to_vec),
                default,
            });
            sources.insert(vi.name.clone(), Source::Input(i));
        }

        let registry = registry();
        let mut steps = Vec::with_capacity(graph.nodes.len());
        let mut slot_count = 0;
        for node in &graph.nodes {
            let domain = canonical_domain(&node.domain);
            let opset = model.opset(domain).unwrap_or(0);
            let node_error = |source: OpError| InterpError::Node {
                node: node.label(),
                op_type: node.op_type.clone(),
                source,
            };
            let ctx = BuildCtx { node, opset };
            let kind = if domain == ONNX && node.op_type == "Constant" {
                let value = crate::ops::generator::constant_value(&ctx).map_err(node_error)?;
                constants.push(value);
                StepKind::Constant(constants.len() - 1)
            } else {
                let entry = registry
                    .lookup(domain, &node.op_type, opset)
                    .ok_or_else(|| InterpError::UnsupportedOp {
                        op_type: node.op_type.clone(),
                        domain: node.domain.clone(),
                        opset,
                    })?;
                let kernel = (entry.build)(&ctx).map_err(node_error)?;
                StepKind::Kernel(crate::half_precision::widening(
                    domain,
                    &node.op_type,
                    kernel,
                ))
            };
            let step_inputs = node
                .inputs
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        Ok(None)
                    } else {
                        sources
                            .get(name)
                            .copied()
                            .map(Some)
                            .ok_or_else(|| InterpError::MissingValue { name: name.clone() })
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let outputs: Vec<Option<usize>> = node
                .outputs
                .iter()
                .map(|name| {
                    if name.is_empty() {
                        return None;
                    }
                    let source = match &kind {
                        // A Constant's single output aliases the prepared value.
                        StepKind::Constant(id) => Source::Constant(*id),
                        StepKind::Kernel(_) => {
                            slot_count += 1;
                            Source::Slot(slot_count - 1)
                        }
                    };
                    sources.insert(name.clone(), source);
                    match source {
                        Source::Slot(s) => Some(s),
                        _ => None,
                    }
                })
                .collect();
            steps.push(Step {
                label: node.label(),
                op_type: node.op_type.clone(),
                kind,
                movable: vec![false; step_inputs.len()],
                inputs: step_inputs,
                outputs,
                output_names: node.outputs.clone(),
                free_after: Vec::new(),
            });
        }

        let outputs = graph
            .outputs
            .iter()
            .map(|o| {
                sources
                    .get(&o.name)
                    .map(|s| (o.name.clone(), *s))
                    .ok_or_else(|| InterpError::MissingValue {
                        name: o.name.clone(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        plan_lifetimes(&mut steps, &outputs, slot_count);
        Ok(Interpreter {
            steps,
            constants,
            inputs,
            outputs,
            slot_count,
        })
    }

    /// Runs the graph on `inputs` (by graph input name) and returns the graph outputs by name.
    pub fn run(
        &self,
        inputs: &HashMap<String, Value>,
    ) -> Result<HashMap<String, Value>, InterpError> {
        self.run_observed(inputs, &mut |_, _| {})
    }

    /// Like [`Interpreter::run`], and calls `observe(name, value)` for every value a node
    /// produces, in topological order (parity uses this to find the first diverging
    /// intermediate).
    pub fn run_observed(
        &self,
        inputs: &HashMap<String, Value>,
        observe: &mut dyn FnMut(&str, &Value),
    ) -> Result<HashMap<String, Value>, InterpError> {
        let given = self.bind_inputs(inputs)?;
        let mut slots: Vec<Option<Value>> = vec![None; self.slot_count];
        for step in &self.steps {
            match &step.kind {
                StepKind::Constant(id) => {
                    if let (Some(name), Some(value)) =
                        (step.output_names.first(), self.constants.get(*id))
                    {
                        observe(name, value);
                    }
                }
                StepKind::Kernel(kernel) => {
                    let produced = self.run_step(step, kernel.as_ref(), &given, &mut slots)?;
                    for ((slot, name), value) in
                        step.outputs.iter().zip(&step.output_names).zip(produced)
                    {
                        if let Some(s) = slot {
                            observe(name, &value);
                            if let Some(cell) = slots.get_mut(*s) {
                                *cell = Some(value);
                            }
                        }
                    }
                }
            }
            for &s in &step.free_after {
                if let Some(cell) = slots.get_mut(s) {
                    *cell = None;
                }
            }
        }
        let mut out = HashMap::with_capacity(self.outputs.len());
        for (name, source) in &self.outputs {
            let value = match source {
                Source::Slot(s) => {
                    // The same value may be listed twice as a graph output: clone the second.
                    match out.get(name) {
                        Some(v) => Some(Value::clone(v)),
                        None => slots.get_mut(*s).and_then(Option::take),
                    }
                }
                other => self.resolve(*other, &given, &slots).cloned(),
            };
            let value = value.ok_or_else(|| InterpError::MissingValue { name: name.clone() })?;
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    /// The graph input names, in order.
    pub fn input_names(&self) -> Vec<&str> {
        self.inputs.iter().map(|i| i.name.as_str()).collect()
    }

    /// The graph output names, in order.
    pub fn output_names(&self) -> Vec<&str> {
        self.outputs.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn run_step(
        &self,
        step: &Step,
        kernel: &dyn Kernel,
        given: &[&Value],
        slots: &mut [Option<Value>],
    ) -> Result<Vec<Value>, InterpError> {
        // First move out the values this step reads for the last time, then borrow the rest.
        let mut moved: Vec<Option<Value>> = step
            .inputs
            .iter()
            .zip(&step.movable)
            .map(|(src, &movable)| match (src, movable) {
                (Some(Source::Slot(s)), true) => slots.get_mut(*s).and_then(Option::take),
                _ => None,
            })
            .collect();
        let mut args = Vec::with_capacity(step.inputs.len());
        for (i, src) in step.inputs.iter().enumerate() {
            let arg = match (src, moved.get_mut(i).and_then(Option::take)) {
                (None, _) => Arg::Absent,
                (Some(_), Some(v)) => Arg::Owned(v),
                (Some(src), None) => match self.resolve(*src, given, slots) {
                    Some(v) => Arg::Borrowed(v),
                    None => return Err(self.missing_input(step, i)),
                },
            };
            args.push(arg);
        }
        let wanted = step
            .output_names
            .iter()
            .rposition(|n| !n.is_empty())
            .map_or(0, |p| p + 1);
        let mut inputs = Inputs::new(args);
        let produced = kernel
            .run(&mut inputs)
            .map_err(|source| InterpError::Node {
                node: step.label.clone(),
                op_type: step.op_type.clone(),
                source,
            })?;
        if produced.len() < wanted {
            return Err(InterpError::Node {
                node: step.label.clone(),
                op_type: step.op_type.clone(),
                source: OpError::unsupported(format!(
                    "the node asks for {wanted} outputs, the kernel computes {}",
                    produced.len()
                )),
            });
        }
        Ok(produced)
    }

    fn missing_input(&self, step: &Step, _index: usize) -> InterpError {
        InterpError::MissingValue {
            name: format!("an input of node '{}'", step.label),
        }
    }

    fn resolve<'a>(
        &'a self,
        src: Source,
        given: &[&'a Value],
        slots: &'a [Option<Value>],
    ) -> Option<&'a Value> {
        match src {
            Source::Constant(id) => self.constants.get(id),
            Source::Input(i) => given.get(i).copied(),
            Source::Slot(s) => slots.get(s).and_then(Option::as_ref),
        }
    }

    /// The value of each graph input: the caller's (checked against the declared type and
    /// shape), else the initializer default.
    fn bind_inputs<'a>(
        &'a self,
        inputs: &'a HashMap<String, Value>,
    ) -> Result<Vec<&'a Value>, InterpError> {
        self.inputs
            .iter()
            .map(|spec| match inputs.get(&spec.name) {
                Some(v) => {
                    check_input(spec, v)?;
                    Ok(v)
                }
                None => spec
                    .default
                    .and_then(|id| self.constants.get(id))
                    .ok_or_else(|| InterpError::MissingInput {
                        name: spec.name.clone(),
                    }),
            })
            .collect()
    }
}

/// Errors when `v` contradicts the input's declared element type, rank or fixed dims.
fn check_input(spec: &InputSpec, v: &Value) -> Result<(), InterpError> {
    let mismatch = |expected: String| InterpError::InputMismatch {
        name: spec.name.clone(),
        expected,
        actual: v.describe(),
    };
    if let Some(t) = spec.elem_type
        && t != v.dtype()
    {
        return Err(mismatch(format!("element type {t}")));
    }
    if let Some(dims) = &spec.shape {
        let fits = dims.len() == v.rank()
            && dims.iter().zip(v.shape()).all(|(d, &n)| match d {
                Dim::Known(k) => *k == n as i64,
                _ => true,
            });
        if !fits {
            let text: Vec<String> = dims.iter().map(ToString::to_string).collect();
            return Err(mismatch(format!("shape [{}]", text.join(","))));
        }
    }
    Ok(())
}

/// Fills each step's `movable` and `free_after`: a slot is dropped after its last reader
/// (or right after it is produced when nothing reads it), unless it is a graph output.
fn plan_lifetimes(steps: &mut [Step], outputs: &[(String, Source)], slot_count: usize) {
    let pinned: HashSet<usize> = outputs
        .iter()
        .filter_map(|(_, s)| match s {
            Source::Slot(x) => Some(*x),
            _ => None,
        })
        .collect();
    let mut last_reader: Vec<Option<usize>> = vec![None; slot_count];
    let mut producer: Vec<usize> = vec![0; slot_count];
    for (i, step) in steps.iter().enumerate() {
        for src in step.inputs.iter().flatten() {
            if let Source::Slot(s) = src
                && let Some(cell) = last_reader.get_mut(*s)
            {
                *cell = Some(i);
            }
        }
        for s in step.outputs.iter().flatten() {
            if let Some(cell) = producer.get_mut(*s) {
                *cell = i;
            }
        }
    }
    for s in 0..slot_count {
        if pinned.contains(&s) {
            continue;
        }
        let when = last_reader
            .get(s)
            .copied()
            .flatten()
            .or_else(|| producer.get(s).copied());
        if let Some(step) = when.and_then(|i| steps.get_mut(i)) {
            step.free_after.push(s);
        }
    }
    for (i, step) in steps.iter_mut().enumerate() {
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for src in step.inputs.iter().flatten() {
            if let Source::Slot(s) = src {
                *counts.entry(*s).or_default() += 1;
            }
        }
        for (j, src) in step.inputs.iter().enumerate() {
            if let Some(Source::Slot(s)) = src {
                let last = last_reader.get(*s).copied().flatten() == Some(i);
                if last
                    && !pinned.contains(s)
                    && counts.get(s) == Some(&1)
                    && let Some(m) = step.movable.get_mut(j)
                {
                    *m = true;
                }
            }
        }
    }
}
