//! The bundled tiny models (from `testdata/models/tiny/`) the mutator starts from, with the
//! inputs of their test data set, compiled into the binary so a fuzzer needs no files.

use std::collections::HashMap;

use bytes::Bytes;
use prost::Message as _;
use transfuse_interp::Value;
use transfuse_ir::Model;

/// One starting model: its file's bytes and its test inputs (serialized `TensorProto`s, in
/// graph-input order).
#[derive(Debug)]
pub struct SeedModel {
    /// The model's name in `testdata/models/tiny/`.
    pub name: &'static str,
    /// The `.onnx` file.
    pub onnx: &'static [u8],
    /// `test_data_set_0/input_N.pb`, in order.
    pub inputs: &'static [&'static [u8]],
}

impl SeedModel {
    /// Decodes the model.
    pub fn model(&self) -> Result<Model, transfuse_ir::IrError> {
        Model::from_bytes(Bytes::from_static(self.onnx), None)
    }

    /// The test inputs by graph input name (inputs that fail to decode are left out; the
    /// bundled files all decode).
    pub fn inputs(&self) -> HashMap<String, Value> {
        let Ok(model) = self.model() else {
            return HashMap::new();
        };
        let names = model
            .graph
            .inputs
            .iter()
            .filter(|v| !model.graph.initializers.contains_key(&v.name))
            .map(|v| v.name.clone());
        names
            .zip(self.inputs)
            .filter_map(|(name, bytes)| {
                let proto = transfuse_ir::proto::TensorProto::decode(*bytes).ok()?;
                let tensor = transfuse_ir::tensor_from_proto(proto).ok()?;
                Some((name, Value::from_tensor(&tensor).ok()?))
            })
            .collect()
    }
}

macro_rules! seed {
    ($name:literal, [$($k:literal),*]) => {
        SeedModel {
            name: $name,
            onnx: include_bytes!(concat!("../../../testdata/models/tiny/", $name, ".onnx")),
            inputs: &[$(include_bytes!(concat!(
                "../../../testdata/models/tiny/", $name, "/test_data_set_0/input_", $k, ".pb"
            ))),*],
        }
    };
}

/// Every bundled tiny model.
pub static SEED_MODELS: &[SeedModel] = &[
    seed!("bert_eager_ts_op14", ["0", "1", "2"]),
    seed!("bert_sdpa_ts_op17", ["0", "1", "2"]),
    seed!("bert_sdpa_dynamo_op18", ["0", "1", "2"]),
    seed!("distilbert_eager_ts_op14", ["0", "1"]),
    seed!("roberta_sdpa_ts_op14", ["0", "1"]),
    seed!("vit_eager_ts_op14", ["0"]),
    seed!("vit_sdpa_ts_op17", ["0"]),
    seed!("vit_sdpa_dynamo_op18", ["0"]),
    seed!("timm_vit_sdpa_ts_op17", ["0"]),
];
