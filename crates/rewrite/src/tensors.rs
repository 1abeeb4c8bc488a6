//! The tensor table: every constant the e-graph refers to, by [`TensorId`].
//!
//! Tensors are `Arc`-shared with the model; nothing here copies weights. Tensors that rules
//! create are interned by content, so re-applying a rule (egg re-runs every rule each
//! iteration) finds the same id instead of growing the e-graph.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use transfuse_ir::{DataType, Tensor};

use crate::lang::TensorId;

/// Where a tensor came from; decides how lowering writes it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorOrigin {
    /// An initializer of the original graph (written back under its own name).
    Initializer,
    /// The value of the original graph's `Constant` node at this index (written back as that
    /// node, unchanged).
    ConstantNode(usize),
    /// A tensor an attribute carried (for example `ConstantOfShape`'s `value`).
    Attribute,
    /// A tensor a rule created (written as a new initializer with a fresh name).
    Created,
}

/// One entry of the table.
#[derive(Clone, Debug)]
pub struct TensorEntry {
    /// The tensor (its `name` is the original value name for initializers and constants).
    pub tensor: Arc<Tensor>,
    /// Where it came from.
    pub origin: TensorOrigin,
    /// [`TensorTable::finite_max_abs`], computed on first use.
    max_abs: OnceLock<Option<f32>>,
}

/// All tensors the e-graph refers to.
#[derive(Clone, Debug, Default)]
pub struct TensorTable {
    entries: Vec<TensorEntry>,
    /// Content key of created tensors -> id.
    created: HashMap<(i32, Vec<i64>, Vec<u8>), TensorId>,
}

impl TensorTable {
    /// Adds a tensor and returns its id.
    pub fn add(&mut self, tensor: Arc<Tensor>, origin: TensorOrigin) -> TensorId {
        let id = TensorId(u32::try_from(self.entries.len()).unwrap_or(u32::MAX));
        self.entries.push(TensorEntry {
            tensor,
            origin,
            max_abs: OnceLock::new(),
        });
        id
    }

    /// Adds a rule-made tensor, or returns the id of an equal one made before. The tensor's
    /// name is ignored (lowering gives it a fresh one).
    pub fn intern(&mut self, tensor: Tensor) -> TensorId {
        let bytes = tensor
            .raw_bytes()
            .map(|b| b.into_owned())
            .unwrap_or_default();
        let key = (tensor.dtype.code(), tensor.dims.clone(), bytes);
        if let Some(&id) = self.created.get(&key) {
            return id;
        }
        let id = self.add(Arc::new(tensor), TensorOrigin::Created);
        self.created.insert(key, id);
        id
    }

    /// A created `f32` tensor.
    pub fn f32(&mut self, dims: Vec<i64>, values: &[f32]) -> TensorId {
        self.intern(Tensor::from_f32("", dims, values))
    }

    /// The entry for `id`.
    pub fn get(&self, id: TensorId) -> Option<&TensorEntry> {
        self.entries.get(id.0 as usize)
    }

    /// The tensor for `id`.
    pub fn tensor(&self, id: TensorId) -> Option<&Arc<Tensor>> {
        self.get(id).map(|e| &e.tensor)
    }

    /// The largest `|value|` of a float32 tensor; `None` when it holds a NaN or an infinity,
    /// is not float32 or has no data. Computed once per tensor (a rule may ask on every match
    /// of every iteration, and an embedding table has tens of millions of values).
    pub fn finite_max_abs(&self, id: TensorId) -> Option<f32> {
        let entry = self.get(id)?;
        *entry.max_abs.get_or_init(|| finite_max_abs(&entry.tensor))
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Element type of a tensor.
    pub fn dtype(&self, id: TensorId) -> Option<DataType> {
        self.tensor(id).map(|t| t.dtype)
    }
}

/// See [`TensorTable::finite_max_abs`]. On the bit patterns: with the sign bit cleared, the
/// order of non-negative floats is that of their bits as integers, and every pattern from
/// `0x7f80_0000` up is an infinity or a NaN. An integer max vectorizes.
fn finite_max_abs(tensor: &Tensor) -> Option<f32> {
    const EXPONENT_ALL_ONES: u32 = 0x7f80_0000;
    if tensor.dtype != DataType::Float {
        return None;
    }
    let raw = tensor.raw_bytes().ok()?;
    let max_bits = raw
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) & 0x7fff_ffff)
        .max()
        .unwrap_or(0);
    (max_bits < EXPONENT_ALL_ONES).then(|| f32::from_bits(max_bits))
}
