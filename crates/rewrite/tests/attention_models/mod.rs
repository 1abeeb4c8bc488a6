//! Synthetic models for the attention and embedding fusion tests: the exporter forms that no
//! model in `testdata/` contains (transformers 4 style masks and scales, the select-form mask,
//! EmbedLayerNormalization inputs), plus deliberately broken variants that must not fuse.
//!
//! Every builder returns a checked [`Model`] with random (seeded, deterministic) weights; the
//! tests compare the optimized model against it with `transfuse-parity`.

#![allow(dead_code)] // each test binary uses a different subset of the builders

use transfuse_ir::{AttrValue, DataType, Dim, Graph, Model, Node, OpsetImport, Tensor, ValueInfo};

/// A small deterministic generator (xorshift64*), so the builders need no extra dependency.
#[derive(Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value; zero is remapped).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let bits = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11;
        bits as f64 / (1u64 << 53) as f64
    }

    /// `n` values uniform in `[-scale, scale)`.
    pub fn floats(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|_| ((self.unit() * 2.0 - 1.0) as f32) * scale)
            .collect()
    }

    /// An integer in `[0, bound)`.
    pub fn below(&mut self, bound: i64) -> i64 {
        ((self.unit() * bound as f64) as i64).min(bound - 1)
    }
}

/// Builds a graph node by node; every helper returns the name of the value it produced.
#[derive(Debug)]
pub struct Builder {
    graph: Graph,
    opset: i64,
    next_id: usize,
    /// Weight generator.
    pub rng: Rng,
}

impl Builder {
    /// An empty graph for ONNX opset `opset`.
    pub fn new(name: &str, opset: i64, seed: u64) -> Builder {
        let graph = Graph {
            name: name.to_string(),
            ..Graph::default()
        };
        Builder {
            graph,
            opset,
            next_id: 0,
            rng: Rng::new(seed),
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.next_id += 1;
        format!("{hint}_{}", self.next_id)
    }

    /// A graph input with symbolic or fixed dims.
    pub fn input(&mut self, name: &str, dtype: DataType, dims: &[Dim]) -> String {
        self.graph
            .inputs
            .push(ValueInfo::tensor(name, dtype, Some(dims.to_vec())));
        name.to_string()
    }

    /// Declares `value` a graph output.
    pub fn output(&mut self, value: &str, dtype: DataType) {
        self.graph
            .outputs
            .push(ValueInfo::tensor(value, dtype, None));
    }

    /// A float initializer.
    pub fn init_f32(&mut self, hint: &str, dims: &[i64], values: &[f32]) -> String {
        let name = self.fresh(hint);
        self.graph
            .add_initializer(Tensor::from_f32(name.clone(), dims.to_vec(), values));
        name
    }

    /// A float initializer of random values in `[-scale, scale)`.
    pub fn random_f32(&mut self, hint: &str, dims: &[i64], scale: f32) -> String {
        let n = dims.iter().product::<i64>() as usize;
        let values = self.rng.floats(n, scale);
        self.init_f32(hint, dims, &values)
    }

    /// An int64 initializer.
    pub fn init_i64(&mut self, hint: &str, dims: &[i64], values: &[i64]) -> String {
        let name = self.fresh(hint);
        self.graph
            .add_initializer(Tensor::from_i64(name.clone(), dims.to_vec(), values));
        name
    }

    /// A `Constant` node holding `tensor` (TorchScript exports spell constants this way).
    pub fn constant(&mut self, hint: &str, tensor: Tensor) -> String {
        let out = self.fresh(hint);
        let node = Node::new("Constant", "", vec![], vec![out.clone()])
            .with_attr("value", AttrValue::Tensor(tensor));
        self.graph.nodes.push(node);
        out
    }

    /// A scalar float `Constant` node.
    pub fn const_scalar_f32(&mut self, value: f32) -> String {
        self.constant("c", Tensor::from_f32("", vec![], &[value]))
    }

    /// A 1-D int64 `Constant` node.
    pub fn const_i64s(&mut self, values: &[i64]) -> String {
        self.constant("c", Tensor::from_i64("", vec![values.len() as i64], values))
    }

    /// A single-output node.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attrs: Vec<(&str, AttrValue)>) -> String {
        let out = self.fresh(&op_type.to_lowercase());
        let mut node = Node::new(
            op_type,
            "",
            inputs.iter().map(|s| s.to_string()).collect(),
            vec![out.clone()],
        );
        for (name, value) in attrs {
            node = node.with_attr(name, value);
        }
        self.graph.nodes.push(node);
        out
    }

    /// A node with several outputs.
    pub fn op_multi(
        &mut self,
        op_type: &str,
        inputs: &[&str],
        outputs: usize,
        attrs: Vec<(&str, AttrValue)>,
    ) -> Vec<String> {
        let outs: Vec<String> = (0..outputs)
            .map(|_| self.fresh(&op_type.to_lowercase()))
            .collect();
        let mut node = Node::new(
            op_type,
            "",
            inputs.iter().map(|s| s.to_string()).collect(),
            outs.clone(),
        );
        for (name, value) in attrs {
            node = node.with_attr(name, value);
        }
        self.graph.nodes.push(node);
        outs
    }

    /// `Unsqueeze(x, axes)` in the spelling of the builder's opset (axes input from 13).
    pub fn unsqueeze(&mut self, x: &str, axes: &[i64]) -> String {
        if self.opset >= 13 {
            let a = self.const_i64s(axes);
            self.op("Unsqueeze", &[x, &a], vec![])
        } else {
            self.op(
                "Unsqueeze",
                &[x],
                vec![("axes", AttrValue::Ints(axes.to_vec()))],
            )
        }
    }

    /// `Transpose(x, perm)`.
    pub fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.op(
            "Transpose",
            &[x],
            vec![("perm", AttrValue::Ints(perm.to_vec()))],
        )
    }

    /// `Gather(Shape(x), axis)` as a 1-element int64 vector (`Unsqueeze`d), as TorchScript emits.
    pub fn dim_of(&mut self, x: &str, axis: i64) -> String {
        let shape = self.op("Shape", &[x], vec![]);
        let idx = self.constant("c", Tensor::from_i64("", vec![], &[axis]));
        let scalar = self.op("Gather", &[&shape, &idx], vec![("axis", AttrValue::Int(0))]);
        self.unsqueeze(&scalar, &[0])
    }

    /// `Add(bias, MatMul(x, W))` with random `[k, n]` weights and `[n]` bias.
    pub fn linear(&mut self, x: &str, k: i64, n: i64, hint: &str) -> String {
        let w = self.random_f32(&format!("{hint}_weight"), &[k, n], 0.4);
        let b = self.random_f32(&format!("{hint}_bias"), &[n], 0.2);
        let mm = self.op("MatMul", &[x, &w], vec![]);
        self.op("Add", &[&b, &mm], vec![])
    }

    /// Renames the single output of the node added last (to give a graph output its name).
    pub fn name_last_output(&mut self, name: &str) {
        if let Some(node) = self.graph.nodes.last_mut() {
            node.outputs = vec![name.to_string()];
        }
    }

    /// The finished model (graph checked and topologically sorted).
    pub fn finish(mut self) -> Model {
        self.graph.check().expect("synthetic graph is well formed");
        Model {
            ir_version: 8,
            opset_imports: vec![OpsetImport {
                domain: String::new(),
                version: self.opset,
            }],
            producer_name: "transfuse-tests".to_string(),
            graph: self.graph,
            ..Model::default()
        }
    }
}

/// Symbolic `[batch, sequence]` dims.
pub fn batch_seq() -> [Dim; 2] {
    [Dim::Symbol("batch".into()), Dim::Symbol("sequence".into())]
}

/// How the synthetic attention layer scales `Q·Kᵀ`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScaleForm {
    /// `Div(MatMul(Q, Kᵀ), √d)` (transformers 4 BERT).
    DivSqrtD,
    /// `Mul(MatMul(Q, Kᵀ), 1/√d)`.
    MulReciprocal,
    /// `MatMul(Mul(Q, d^-1/4), Mul(Kᵀ, d^-1/4))` (SDPA through TorchScript).
    BothSides,
    /// `Mul(1/√d, MatMul(Q, Kᵀ))`: the constant first.
    ConstantFirst,
    /// `MatMul(Div(Q, √d), Kᵀ)`: the whole scale on the query.
    OnQuery,
    /// `MatMul(Q, Mul(Kᵀ, 1/√d))`: the whole scale on the key.
    OnKey,
    /// `MatMul(Div(Q, d^1/4), Div(Kᵀ, d^1/4))`.
    BothSidesDiv,
    /// A per-head `[1, N, 1, 1]` vector: not a single scale, must not fuse.
    PerHeadVector,
    /// `Mul(MatMul(Q, Kᵀ), 0)`: ONNX Runtime reads a zero `scale` as the default, must not
    /// fuse.
    Zero,
}

/// How the synthetic attention layer masks padded keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaskForm {
    /// No mask at all.
    None,
    /// `Mul(Sub(1, Cast(Unsqueeze(mask, [1, 2]))), fill)` added to the scores: `[B,1,1,T]`.
    ClassicAdditive(f32),
    /// `Where(Cast(Unsqueeze(mask, [1, 2]), bool), scores, fill)` (select, not add).
    Select(f32),
    /// `Where(Equal(Unsqueeze(mask, [1, 2]), 0), fill, scores)`: PyTorch's `masked_fill`
    /// (the fill in the first branch, as XLM writes it).
    MaskedFill(f32),
}

/// How Kᵀ is spelled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum KeyTransposeForm {
    /// `Transpose([0,2,1,3])` then `Transpose([0,1,3,2])`.
    TwoTransposes,
    /// One `Transpose([0,2,3,1])` straight after the head reshape.
    OneTranspose,
    /// Dynamo's `Reshape(3-D) -> Transpose([0,2,1]) -> Reshape(4-D)`.
    MergedBatch,
    /// K not transposed at all (`MatMul(Q, K)` on `[B,N,S,d]`): not attention, must not fuse.
    Missing,
}

/// Options of [`bert_attention_layer`].
#[derive(Clone, Copy, Debug)]
pub struct AttentionOptions {
    /// Hidden size.
    pub hidden: i64,
    /// Heads.
    pub heads: i64,
    /// Scale spelling.
    pub scale: ScaleForm,
    /// Mask spelling.
    pub mask: MaskForm,
    /// Kᵀ spelling.
    pub key_transpose: KeyTransposeForm,
    /// Softmax axis (`-1` or `3` is attention; anything else must not fuse).
    pub softmax_axis: i64,
    /// ONNX opset of the model.
    pub opset: i64,
    /// Keys and values from a second input `encoder_hidden_states [batch, kv_sequence, H]`
    /// (cross-attention: Q, K, V cannot be packed into one projection).
    pub cross_attention: bool,
    /// A term added to Q and K after their head splits, `q + q · p` with a constant `p`
    /// `[d]` (the algebraic shape of rotary embeddings: Q and K are then no head splits).
    /// Needs [`KeyTransposeForm::TwoTransposes`].
    pub position_term: bool,
}

impl Default for AttentionOptions {
    fn default() -> Self {
        AttentionOptions {
            hidden: 32,
            heads: 4,
            scale: ScaleForm::DivSqrtD,
            mask: MaskForm::ClassicAdditive(-10000.0),
            key_transpose: KeyTransposeForm::TwoTransposes,
            softmax_axis: -1,
            opset: 14,
            cross_attention: false,
            position_term: false,
        }
    }
}

/// A transformers-4-style BERT self-attention block with its output projection:
/// inputs `hidden_states [batch, sequence, H]` (float), with `cross_attention` also
/// `encoder_hidden_states [batch, kv_sequence, H]`, and unless the mask form is `None`,
/// `attention_mask [batch, kv_sequence]` (int64); output `output [batch, sequence, H]`.
pub fn bert_attention_layer(opts: AttentionOptions) -> Model {
    let h = opts.hidden;
    let n = opts.heads;
    let d = h / n;
    let mut b = Builder::new("synthetic_attention", opts.opset, 0x5EED ^ h as u64);
    let [batch, seq] = batch_seq();
    let x = b.input(
        "hidden_states",
        DataType::Float,
        &[batch.clone(), seq.clone(), Dim::Known(h)],
    );
    let kv_seq = if opts.cross_attention {
        Dim::Symbol("kv_sequence".into())
    } else {
        seq
    };
    let kv = if opts.cross_attention {
        b.input(
            "encoder_hidden_states",
            DataType::Float,
            &[batch.clone(), kv_seq.clone(), Dim::Known(h)],
        )
    } else {
        x.clone()
    };
    let mask_input = match opts.mask {
        MaskForm::None => None,
        _ => Some(b.input("attention_mask", DataType::Int64, &[batch, kv_seq])),
    };

    // Head split targets [B, S, N, d] from the inputs' shapes, TorchScript style.
    let bdim = b.dim_of(&x, 0);
    let sdim = b.dim_of(&x, 1);
    let kv_sdim = b.dim_of(&kv, 1);
    let nd = b.const_i64s(&[n, d]);
    let split_target = b.op(
        "Concat",
        &[&bdim, &sdim, &nd],
        vec![("axis", AttrValue::Int(0))],
    );
    let kv_split_target = b.op(
        "Concat",
        &[&bdim, &kv_sdim, &nd],
        vec![("axis", AttrValue::Int(0))],
    );

    let q_lin = b.linear(&x, h, h, "query");
    let k_lin = b.linear(&kv, h, h, "key");
    let v_lin = b.linear(&kv, h, h, "value");
    let q4r = b.op("Reshape", &[&q_lin, &split_target], vec![]);
    let q = b.transpose(&q4r, &[0, 2, 1, 3]);
    let position = opts
        .position_term
        .then(|| b.random_f32("position", &[d], 0.5));
    let with_position = |b: &mut Builder, t: &str| -> String {
        match &position {
            Some(p) => {
                let scaled = b.op("Mul", &[t, p], vec![]);
                b.op("Add", &[t, &scaled], vec![])
            }
            None => t.to_string(),
        }
    };
    let q = with_position(&mut b, &q);
    let v4r = b.op("Reshape", &[&v_lin, &kv_split_target], vec![]);
    let v = b.transpose(&v4r, &[0, 2, 1, 3]);
    let k4r = b.op("Reshape", &[&k_lin, &kv_split_target], vec![]);
    let kt = match opts.key_transpose {
        KeyTransposeForm::TwoTransposes => {
            let k = b.transpose(&k4r, &[0, 2, 1, 3]);
            let k = with_position(&mut b, &k);
            b.transpose(&k, &[0, 1, 3, 2])
        }
        KeyTransposeForm::OneTranspose => b.transpose(&k4r, &[0, 2, 3, 1]),
        KeyTransposeForm::MergedBatch => {
            let k = b.transpose(&k4r, &[0, 2, 1, 3]);
            let minus_one = b.const_i64s(&[-1]);
            let dconst = b.const_i64s(&[d]);
            let t3 = b.op(
                "Concat",
                &[&minus_one, &kv_sdim, &dconst],
                vec![("axis", AttrValue::Int(0))],
            );
            let k3 = b.op("Reshape", &[&k, &t3], vec![]);
            let k3t = b.transpose(&k3, &[0, 2, 1]);
            let nd_const = b.const_i64s(&[n, d]);
            let t4 = b.op(
                "Concat",
                &[&bdim, &nd_const, &kv_sdim],
                vec![("axis", AttrValue::Int(0))],
            );
            b.op("Reshape", &[&k3t, &t4], vec![])
        }
        KeyTransposeForm::Missing => b.transpose(&k4r, &[0, 2, 1, 3]),
    };

    let scores = match opts.scale {
        ScaleForm::DivSqrtD => {
            let qk = b.op("MatMul", &[&q, &kt], vec![]);
            let c = b.const_scalar_f32((d as f32).sqrt());
            b.op("Div", &[&qk, &c], vec![])
        }
        ScaleForm::MulReciprocal => {
            let qk = b.op("MatMul", &[&q, &kt], vec![]);
            let c = b.const_scalar_f32(1.0 / (d as f32).sqrt());
            b.op("Mul", &[&qk, &c], vec![])
        }
        ScaleForm::BothSides => {
            let c = (d as f32).powf(-0.25);
            let cq = b.const_scalar_f32(c);
            let ck = b.const_scalar_f32(c);
            let qs = b.op("Mul", &[&q, &cq], vec![]);
            let ks = b.op("Mul", &[&kt, &ck], vec![]);
            b.op("MatMul", &[&qs, &ks], vec![])
        }
        ScaleForm::ConstantFirst => {
            let qk = b.op("MatMul", &[&q, &kt], vec![]);
            let c = b.const_scalar_f32(1.0 / (d as f32).sqrt());
            b.op("Mul", &[&c, &qk], vec![])
        }
        ScaleForm::OnQuery => {
            let c = b.const_scalar_f32((d as f32).sqrt());
            let qs = b.op("Div", &[&q, &c], vec![]);
            b.op("MatMul", &[&qs, &kt], vec![])
        }
        ScaleForm::OnKey => {
            let c = b.const_scalar_f32(1.0 / (d as f32).sqrt());
            let ks = b.op("Mul", &[&kt, &c], vec![]);
            b.op("MatMul", &[&q, &ks], vec![])
        }
        ScaleForm::BothSidesDiv => {
            let c = (d as f32).powf(0.25);
            let cq = b.const_scalar_f32(c);
            let ck = b.const_scalar_f32(c);
            let qs = b.op("Div", &[&q, &cq], vec![]);
            let ks = b.op("Div", &[&kt, &ck], vec![]);
            b.op("MatMul", &[&qs, &ks], vec![])
        }
        ScaleForm::Zero => {
            let qk = b.op("MatMul", &[&q, &kt], vec![]);
            let c = b.const_scalar_f32(0.0);
            b.op("Mul", &[&qk, &c], vec![])
        }
        ScaleForm::PerHeadVector => {
            let qk = b.op("MatMul", &[&q, &kt], vec![]);
            let per_head: Vec<f32> = (0..n)
                .map(|i| (1.0 + i as f32) / (d as f32).sqrt())
                .collect();
            let c = b.init_f32("per_head_scale", &[1, n, 1, 1], &per_head);
            b.op("Mul", &[&qk, &c], vec![])
        }
    };

    let masked = match (opts.mask, &mask_input) {
        (MaskForm::ClassicAdditive(fill), Some(m)) => {
            let m4 = b.unsqueeze(m, &[1, 2]);
            let mf = b.op(
                "Cast",
                &[&m4],
                vec![("to", AttrValue::Int(DataType::Float.code() as i64))],
            );
            let one = b.const_scalar_f32(1.0);
            let inv = b.op("Sub", &[&one, &mf], vec![]);
            let f = b.const_scalar_f32(fill);
            let additive = b.op("Mul", &[&inv, &f], vec![]);
            b.op("Add", &[&scores, &additive], vec![])
        }
        (MaskForm::Select(fill), Some(m)) => {
            let m4 = b.unsqueeze(m, &[1, 2]);
            let keep = b.op(
                "Cast",
                &[&m4],
                vec![("to", AttrValue::Int(DataType::Bool.code() as i64))],
            );
            let f = b.const_scalar_f32(fill);
            b.op("Where", &[&keep, &scores, &f], vec![])
        }
        (MaskForm::MaskedFill(fill), Some(m)) => {
            let m4 = b.unsqueeze(m, &[1, 2]);
            let zero = b.const_i64s(&[0]);
            let masked = b.op("Equal", &[&m4, &zero], vec![]);
            let f = b.const_scalar_f32(fill);
            b.op("Where", &[&masked, &f, &scores], vec![])
        }
        _ => scores,
    };

    let probs = b.op(
        "Softmax",
        &[&masked],
        vec![("axis", AttrValue::Int(opts.softmax_axis))],
    );
    let ctx = b.op("MatMul", &[&probs, &v], vec![]);
    let ctx_t = b.transpose(&ctx, &[0, 2, 1, 3]);
    let hconst = b.const_i64s(&[h]);
    let merge_target = b.op(
        "Concat",
        &[&bdim, &sdim, &hconst],
        vec![("axis", AttrValue::Int(0))],
    );
    let merged = b.op("Reshape", &[&ctx_t, &merge_target], vec![]);
    b.linear(&merged, h, h, "attention_output");
    b.name_last_output("output");
    b.output("output", DataType::Float);
    b.finish()
}

/// A timm-style block with one packed `[H, 3H]` qkv linear, split through
/// `Reshape [B,S,3,N,d] -> Transpose [2,0,3,1,4] -> Split -> Squeeze`, no mask, scale on
/// both sides computed from the shape (`Sqrt(1/Sqrt(d))`), `Softmax -> Cast -> Cast`.
///
/// With `weight_is_input` the qkv weight is a graph input (`qkv_weight [H, 3H]`) instead of
/// an initializer, so the projection cannot be packed into `Attention`'s weights.
pub fn packed_qkv_layer(hidden: i64, heads: i64, weight_is_input: bool) -> Model {
    packed_qkv_layer_unbound(hidden, heads, weight_is_input, Unbind::Split)
}

/// How the packed `[3, B, N, S, d]` tensor is cut into q, k and v.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unbind {
    /// `Split([1, 1, 1], axis 0)` then `Squeeze(axis 0)` (TorchScript).
    Split,
    /// `Slice([i], [i + 1], [0])` then `Squeeze(axis 0)`, the last end `i64::MAX` (dynamo's
    /// `unbind`).
    Slices,
}

/// [`packed_qkv_layer`] with the given [`Unbind`] spelling.
pub fn packed_qkv_layer_unbound(
    hidden: i64,
    heads: i64,
    weight_is_input: bool,
    unbind: Unbind,
) -> Model {
    let h = hidden;
    let n = heads;
    let d = h / n;
    let mut b = Builder::new("synthetic_packed_qkv", 17, 0xBEEF);
    let [batch, _] = batch_seq();
    let x = b.input(
        "hidden_states",
        DataType::Float,
        &[batch, Dim::Known(9), Dim::Known(h)],
    );
    let qkv = if weight_is_input {
        let w = b.input(
            "qkv_weight",
            DataType::Float,
            &[Dim::Known(h), Dim::Known(3 * h)],
        );
        let bias = b.random_f32("qkv_bias", &[3 * h], 0.2);
        let mm = b.op("MatMul", &[&x, &w], vec![]);
        b.op("Add", &[&bias, &mm], vec![])
    } else {
        b.linear(&x, h, 3 * h, "qkv")
    };
    let bdim = b.dim_of(&x, 0);
    let sdim = b.dim_of(&x, 1);
    let rest = b.const_i64s(&[3, n, d]);
    let target = b.op(
        "Concat",
        &[&bdim, &sdim, &rest],
        vec![("axis", AttrValue::Int(0))],
    );
    let qkv5 = b.op("Reshape", &[&qkv, &target], vec![]);
    let t = b.transpose(&qkv5, &[2, 0, 3, 1, 4]);
    let zero = b.const_i64s(&[0]);
    let parts = match unbind {
        Unbind::Split => {
            let split = b.const_i64s(&[1, 1, 1]);
            b.op_multi("Split", &[&t, &split], 3, vec![("axis", AttrValue::Int(0))])
        }
        Unbind::Slices => [(0, 1), (1, 2), (2, i64::MAX)]
            .iter()
            .map(|&(start, end)| {
                let start = b.const_i64s(&[start]);
                let end = b.const_i64s(&[end]);
                b.op("Slice", &[&t, &start, &end, &zero], vec![])
            })
            .collect(),
    };
    let q = b.op("Squeeze", &[&parts[0], &zero], vec![]);
    let k = b.op("Squeeze", &[&parts[1], &zero], vec![]);
    let v = b.op("Squeeze", &[&parts[2], &zero], vec![]);
    // scale = Sqrt(Cast(1 / Sqrt(Cast(Shape(q)[-1:])))) applied to q and kᵀ
    let shape = b.op("Shape", &[&q], vec![]);
    let start = b.const_i64s(&[-1]);
    let end = b.const_i64s(&[i64::MAX]);
    let last = b.op("Slice", &[&shape, &start, &end], vec![]);
    let float = AttrValue::Int(DataType::Float.code() as i64);
    let lastf = b.op("Cast", &[&last], vec![("to", float.clone())]);
    let sq = b.op("Sqrt", &[&lastf], vec![]);
    let one = b.init_f32("one", &[1], &[1.0]);
    let inv = b.op("Div", &[&one, &sq], vec![]);
    let invc = b.op("Cast", &[&inv], vec![("to", float.clone())]);
    let kt = b.transpose(&k, &[0, 1, 3, 2]);
    let s1 = b.op("Sqrt", &[&invc], vec![]);
    let qs = b.op("Mul", &[&q, &s1], vec![]);
    let s2 = b.op("Sqrt", &[&invc], vec![]);
    let ks = b.op("Mul", &[&kt, &s2], vec![]);
    let scores = b.op("MatMul", &[&qs, &ks], vec![]);
    let probs = b.op("Softmax", &[&scores], vec![("axis", AttrValue::Int(-1))]);
    let c1 = b.op("Cast", &[&probs], vec![("to", float.clone())]);
    let c2 = b.op("Cast", &[&c1], vec![("to", float)]);
    let ctx = b.op("MatMul", &[&c2, &v], vec![]);
    let ctx_t = b.transpose(&ctx, &[0, 2, 1, 3]);
    let hconst = b.const_i64s(&[h]);
    let merge_target = b.op(
        "Concat",
        &[&bdim, &sdim, &hconst],
        vec![("axis", AttrValue::Int(0))],
    );
    let merged = b.op("Reshape", &[&ctx_t, &merge_target], vec![]);
    b.linear(&merged, h, h, "proj");
    b.name_last_output("output");
    b.output("output", DataType::Float);
    b.finish()
}

/// How the synthetic embedding computes its position ids.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PositionForm {
    /// `Slice(Constant [1, P] = 0..P-1, [0], [S], [1], [1])` (TorchScript BERT).
    SliceOfArange,
    /// `Unsqueeze(Range(0, S, 1), [0])`.
    Range,
    /// `Slice(Constant [1, P] = 0..P-1, [2], [S + 2])`: positions start at 2, must not fuse.
    SliceWithOffset,
    /// `Slice` of a constant that is not `0, 1, 2, ...` (reversed): must not fuse.
    SliceOfNonArange,
    /// RoBERTa's `CumSum(ids != pad) * (ids != pad) + pad`: must not fuse.
    CumSum,
}

/// Options of [`bert_embeddings`].
#[derive(Clone, Copy, Debug)]
pub struct EmbeddingOptions {
    /// Hidden size.
    pub hidden: i64,
    /// Vocabulary size.
    pub vocab: i64,
    /// Rows of the position table.
    pub max_positions: i64,
    /// With a `token_type_ids` input and segment table.
    pub segment: bool,
    /// Position ids spelling.
    pub positions: PositionForm,
    /// Add word + segment first (BERT) or position first.
    pub position_added_first: bool,
    /// LayerNormalization epsilon.
    pub epsilon: f32,
    /// Normalize over the last axis (`false`: axis 1, must not fuse).
    pub last_axis: bool,
}

impl Default for EmbeddingOptions {
    fn default() -> Self {
        EmbeddingOptions {
            hidden: 32,
            vocab: 50,
            max_positions: 24,
            segment: true,
            positions: PositionForm::SliceOfArange,
            position_added_first: false,
            epsilon: 1e-12,
            last_axis: true,
        }
    }
}

/// A BERT-style embedding block (opset 17, `LayerNormalization` op): inputs `input_ids`
/// (and `token_type_ids`) `[batch, sequence]` int64; output `output [batch, sequence, H]`.
pub fn bert_embeddings(opts: EmbeddingOptions) -> Model {
    let h = opts.hidden;
    let mut b = Builder::new("synthetic_embeddings", 17, 0xE3B ^ h as u64);
    let [batch, seq] = batch_seq();
    let ids = b.input("input_ids", DataType::Int64, &[batch.clone(), seq.clone()]);
    let segment_ids = opts
        .segment
        .then(|| b.input("token_type_ids", DataType::Int64, &[batch, seq]));

    let word_table = b.random_f32("word_embeddings", &[opts.vocab, h], 1.0);
    let pos_table = b.random_f32("position_embeddings", &[opts.max_positions, h], 1.0);
    let word = b.op("Gather", &[&word_table, &ids], vec![]);

    let p = opts.max_positions;
    let arange: Vec<i64> = (0..p).collect();
    let positions = match opts.positions {
        PositionForm::SliceOfArange
        | PositionForm::SliceWithOffset
        | PositionForm::SliceOfNonArange => {
            let values: Vec<i64> = match opts.positions {
                PositionForm::SliceOfNonArange => arange.iter().rev().copied().collect(),
                _ => arange.clone(),
            };
            let table = b.constant("position_ids", Tensor::from_i64("", vec![1, p], &values));
            let s = b.dim_of(&ids, 1);
            let axes = b.const_i64s(&[1]);
            let steps = b.const_i64s(&[1]);
            if opts.positions == PositionForm::SliceWithOffset {
                let start = b.const_i64s(&[2]);
                let end = b.op("Add", &[&s, &start], vec![]);
                b.op("Slice", &[&table, &start, &end, &axes, &steps], vec![])
            } else {
                let start = b.const_i64s(&[0]);
                b.op("Slice", &[&table, &start, &s, &axes, &steps], vec![])
            }
        }
        PositionForm::Range => {
            let shape = b.op("Shape", &[&ids], vec![]);
            let idx = b.constant("c", Tensor::from_i64("", vec![], &[1]));
            let s = b.op("Gather", &[&shape, &idx], vec![("axis", AttrValue::Int(0))]);
            let zero = b.constant("c", Tensor::from_i64("", vec![], &[0]));
            let one = b.constant("c", Tensor::from_i64("", vec![], &[1]));
            let r = b.op("Range", &[&zero, &s, &one], vec![]);
            b.unsqueeze(&r, &[0])
        }
        PositionForm::CumSum => {
            let pad = b.constant("c", Tensor::from_i64("", vec![], &[1]));
            let eq = b.op("Equal", &[&ids, &pad], vec![]);
            let not_pad = b.op("Not", &[&eq], vec![]);
            let as_int = b.op(
                "Cast",
                &[&not_pad],
                vec![("to", AttrValue::Int(DataType::Int64.code() as i64))],
            );
            let axis = b.constant("c", Tensor::from_i64("", vec![], &[1]));
            let cs = b.op("CumSum", &[&as_int, &axis], vec![]);
            let masked = b.op("Mul", &[&cs, &as_int], vec![]);
            b.op("Add", &[&masked, &pad], vec![])
        }
    };
    let pos = b.op("Gather", &[&pos_table, &positions], vec![]);

    let sum = match &segment_ids {
        Some(seg) => {
            let seg_table = b.random_f32("token_type_embeddings", &[2, h], 1.0);
            let segment = b.op("Gather", &[&seg_table, seg], vec![]);
            if opts.position_added_first {
                let wp = b.op("Add", &[&word, &pos], vec![]);
                b.op("Add", &[&segment, &wp], vec![])
            } else {
                let ws = b.op("Add", &[&word, &segment], vec![]);
                b.op("Add", &[&ws, &pos], vec![])
            }
        }
        None => b.op("Add", &[&word, &pos], vec![]),
    };
    let gamma = b.random_f32("ln_weight", &[h], 1.0);
    let beta = b.random_f32("ln_bias", &[h], 0.5);
    let axis = if opts.last_axis { -1 } else { 1 };
    b.op(
        "LayerNormalization",
        &[&sum, &gamma, &beta],
        vec![
            ("axis", AttrValue::Int(axis)),
            ("epsilon", AttrValue::Float(opts.epsilon)),
        ],
    );
    b.name_last_output("output");
    b.output("output", DataType::Float);
    b.finish()
}
