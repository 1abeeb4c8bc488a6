//! Conversion between protobuf messages and the IR.
//!
//! Contract: `to_proto(from_proto(m))` encodes every field of `m` that carries information
//! (fields holding their default value may be omitted; protobuf readers treat both alike).

use std::sync::Arc;

use transfuse_proto as pb;
use transfuse_proto::attribute_proto::AttributeType as AT;

use crate::graph::{AttrValue, Attribute, Dim, Graph, Node, ValueInfo, ValueType};
use crate::model::{Model, OpsetImport};
use crate::tensor::{ExternalLocation, Tensor, TensorData};
use crate::{DataType, IrError, Result};

fn s(o: Option<String>) -> String {
    o.unwrap_or_default()
}
fn opt(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
fn props_in(v: Vec<pb::StringStringEntryProto>) -> Vec<(String, String)> {
    v.into_iter().map(|e| (s(e.key), s(e.value))).collect()
}
fn props_out(v: &[(String, String)]) -> Vec<pb::StringStringEntryProto> {
    v.iter()
        .map(|(k, v)| pb::StringStringEntryProto {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

/// Protobuf model to IR model. External data is not resolved here (see `load`).
pub(crate) fn model_from_proto(m: pb::ModelProto) -> Result<Model> {
    let graph = m
        .graph
        .ok_or_else(|| IrError::NotOnnx("the model has no graph".into()))?;
    if m.ir_version.unwrap_or(0) <= 0 {
        return Err(IrError::NotOnnx("ir_version is missing".into()));
    }
    Ok(Model {
        ir_version: m.ir_version.unwrap_or(0),
        opset_imports: m
            .opset_import
            .into_iter()
            .map(|o| OpsetImport {
                domain: s(o.domain),
                version: o.version.unwrap_or(0),
            })
            .collect(),
        producer_name: s(m.producer_name),
        producer_version: s(m.producer_version),
        domain: s(m.domain),
        model_version: m.model_version.unwrap_or(0),
        doc_string: s(m.doc_string),
        graph: graph_from_proto(graph)?,
        metadata_props: props_in(m.metadata_props),
        training_info: m.training_info,
        functions: m.functions,
        configuration: m.configuration,
    })
}

/// IR model to protobuf model. Tensor data is shared (`Bytes`), not copied.
pub(crate) fn model_to_proto(m: &Model) -> pb::ModelProto {
    pb::ModelProto {
        ir_version: Some(m.ir_version),
        opset_import: m
            .opset_imports
            .iter()
            .map(|o| pb::OperatorSetIdProto {
                domain: Some(o.domain.clone()),
                version: Some(o.version),
            })
            .collect(),
        producer_name: opt(&m.producer_name),
        producer_version: opt(&m.producer_version),
        domain: opt(&m.domain),
        model_version: (m.model_version != 0).then_some(m.model_version),
        doc_string: opt(&m.doc_string),
        graph: Some(graph_to_proto(&m.graph)),
        metadata_props: props_out(&m.metadata_props),
        training_info: m.training_info.clone(),
        functions: m.functions.clone(),
        configuration: m.configuration.clone(),
    }
}

/// Protobuf graph to IR graph (unchecked: run [`Graph::check`] afterwards).
pub fn graph_from_proto(g: pb::GraphProto) -> Result<Graph> {
    let mut initializers = indexmap::IndexMap::with_capacity(g.initializer.len());
    for t in g.initializer {
        let t = tensor_from_proto(t)?;
        if initializers.contains_key(&t.name) {
            return Err(IrError::DuplicateValue {
                name: t.name.clone(),
                first: "an initializer".into(),
                second: "an initializer".into(),
            });
        }
        initializers.insert(t.name.clone(), Arc::new(t));
    }
    Ok(Graph {
        name: s(g.name),
        doc_string: s(g.doc_string),
        inputs: g.input.into_iter().map(value_info_from_proto).collect(),
        outputs: g.output.into_iter().map(value_info_from_proto).collect(),
        value_info: g
            .value_info
            .into_iter()
            .map(value_info_from_proto)
            .collect(),
        nodes: g
            .node
            .into_iter()
            .map(node_from_proto)
            .collect::<Result<_>>()?,
        initializers,
        sparse_initializers: g.sparse_initializer,
        quantization_annotation: g.quantization_annotation,
        metadata_props: props_in(g.metadata_props),
    })
}

/// IR graph to protobuf graph.
pub fn graph_to_proto(g: &Graph) -> pb::GraphProto {
    pb::GraphProto {
        node: g.nodes.iter().map(node_to_proto).collect(),
        name: Some(g.name.clone()),
        initializer: g
            .initializers
            .values()
            .map(|t| tensor_to_proto(t))
            .collect(),
        sparse_initializer: g.sparse_initializers.clone(),
        doc_string: opt(&g.doc_string),
        input: g.inputs.iter().map(value_info_to_proto).collect(),
        output: g.outputs.iter().map(value_info_to_proto).collect(),
        value_info: g.value_info.iter().map(value_info_to_proto).collect(),
        quantization_annotation: g.quantization_annotation.clone(),
        metadata_props: props_out(&g.metadata_props),
    }
}

fn node_from_proto(n: pb::NodeProto) -> Result<Node> {
    Ok(Node {
        name: s(n.name),
        op_type: s(n.op_type),
        domain: s(n.domain),
        overload: s(n.overload),
        inputs: n.input,
        outputs: n.output,
        attributes: n
            .attribute
            .into_iter()
            .map(attribute_from_proto)
            .collect::<Result<_>>()?,
        doc_string: s(n.doc_string),
        metadata_props: props_in(n.metadata_props),
        device_configurations: n.device_configurations,
    })
}

pub(crate) fn node_to_proto(n: &Node) -> pb::NodeProto {
    pb::NodeProto {
        input: n.inputs.clone(),
        output: n.outputs.clone(),
        name: opt(&n.name),
        op_type: Some(n.op_type.clone()),
        domain: opt(&n.domain),
        overload: opt(&n.overload),
        attribute: n.attributes.iter().map(attribute_to_proto).collect(),
        doc_string: opt(&n.doc_string),
        metadata_props: props_out(&n.metadata_props),
        device_configurations: n.device_configurations.clone(),
    }
}

fn attribute_from_proto(a: pb::AttributeProto) -> Result<Attribute> {
    // IR v1 files may lack `type`: infer it from the field that is set.
    let ty = match a.r#type.and_then(|t| AT::try_from(t).ok()) {
        Some(t) if t != AT::Undefined => t,
        _ => {
            if a.f.is_some() {
                AT::Float
            } else if a.i.is_some() {
                AT::Int
            } else if a.s.is_some() {
                AT::String
            } else if a.t.is_some() {
                AT::Tensor
            } else if a.g.is_some() {
                AT::Graph
            } else if !a.floats.is_empty() {
                AT::Floats
            } else if !a.ints.is_empty() {
                AT::Ints
            } else if !a.strings.is_empty() {
                AT::Strings
            } else if !a.tensors.is_empty() {
                AT::Tensors
            } else if !a.graphs.is_empty() {
                AT::Graphs
            } else {
                AT::Undefined
            }
        }
    };
    let value = match ty {
        AT::Float => AttrValue::Float(a.f.unwrap_or(0.0)),
        AT::Int => AttrValue::Int(a.i.unwrap_or(0)),
        AT::String => AttrValue::String(a.s.unwrap_or_default()),
        AT::Tensor => match a.t {
            Some(t) => AttrValue::Tensor(tensor_from_proto(t)?),
            None => AttrValue::Undefined,
        },
        AT::Graph => match a.g {
            Some(g) => AttrValue::Graph(Box::new(g)),
            None => AttrValue::Undefined,
        },
        AT::SparseTensor => match a.sparse_tensor {
            Some(t) => AttrValue::SparseTensor(Box::new(t)),
            None => AttrValue::Undefined,
        },
        AT::TypeProto => match a.tp {
            Some(t) => AttrValue::TypeProto(Box::new(t)),
            None => AttrValue::Undefined,
        },
        AT::Floats => AttrValue::Floats(a.floats),
        AT::Ints => AttrValue::Ints(a.ints),
        AT::Strings => AttrValue::Strings(a.strings),
        AT::Tensors => AttrValue::Tensors(
            a.tensors
                .into_iter()
                .map(tensor_from_proto)
                .collect::<Result<_>>()?,
        ),
        AT::Graphs => AttrValue::Graphs(a.graphs),
        AT::SparseTensors => AttrValue::SparseTensors(a.sparse_tensors),
        AT::TypeProtos => AttrValue::TypeProtos(a.type_protos),
        AT::Undefined => AttrValue::Undefined,
    };
    Ok(Attribute {
        name: s(a.name),
        value,
        doc_string: s(a.doc_string),
        ref_attr_name: s(a.ref_attr_name),
    })
}

fn attribute_to_proto(a: &Attribute) -> pb::AttributeProto {
    let mut p = pb::AttributeProto {
        name: Some(a.name.clone()),
        doc_string: opt(&a.doc_string),
        ref_attr_name: opt(&a.ref_attr_name),
        ..Default::default()
    };
    let ty = match &a.value {
        AttrValue::Float(f) => {
            p.f = Some(*f);
            AT::Float
        }
        AttrValue::Int(i) => {
            p.i = Some(*i);
            AT::Int
        }
        AttrValue::String(v) => {
            p.s = Some(v.clone());
            AT::String
        }
        AttrValue::Tensor(t) => {
            p.t = Some(tensor_to_proto(t));
            AT::Tensor
        }
        AttrValue::Graph(g) => {
            p.g = Some((**g).clone());
            AT::Graph
        }
        AttrValue::SparseTensor(t) => {
            p.sparse_tensor = Some((**t).clone());
            AT::SparseTensor
        }
        AttrValue::TypeProto(t) => {
            p.tp = Some((**t).clone());
            AT::TypeProto
        }
        AttrValue::Floats(v) => {
            p.floats = v.clone();
            AT::Floats
        }
        AttrValue::Ints(v) => {
            p.ints = v.clone();
            AT::Ints
        }
        AttrValue::Strings(v) => {
            p.strings = v.clone();
            AT::Strings
        }
        AttrValue::Tensors(v) => {
            p.tensors = v.iter().map(tensor_to_proto).collect();
            AT::Tensors
        }
        AttrValue::Graphs(v) => {
            p.graphs = v.clone();
            AT::Graphs
        }
        AttrValue::SparseTensors(v) => {
            p.sparse_tensors = v.clone();
            AT::SparseTensors
        }
        AttrValue::TypeProtos(v) => {
            p.type_protos = v.clone();
            AT::TypeProtos
        }
        AttrValue::Undefined => AT::Undefined,
    };
    if ty != AT::Undefined {
        p.r#type = Some(ty as i32);
    }
    p
}

/// Protobuf tensor to IR tensor. External data references are recorded in
/// `Tensor::external` but not read (the loader fills `data`).
pub fn tensor_from_proto(t: pb::TensorProto) -> Result<Tensor> {
    let name = s(t.name);
    let dtype = DataType::from_code(t.data_type.unwrap_or(0));
    let external = if t.data_location == Some(pb::tensor_proto::DataLocation::External as i32) {
        let mut loc = ExternalLocation {
            location: String::new(),
            offset: 0,
            length: 0,
            extra: Vec::new(),
        };
        let mut has_length = false;
        for e in t.external_data {
            let (k, v) = (s(e.key), s(e.value));
            let num = || {
                v.parse::<u64>().map_err(|_| IrError::ExternalDataInvalid {
                    tensor: name.clone(),
                    reason: format!("'{k}' is not a number: '{v}'"),
                })
            };
            match k.as_str() {
                "location" => loc.location = v.clone(),
                "offset" => loc.offset = num()?,
                "length" => {
                    loc.length = num()?;
                    has_length = true;
                }
                _ => loc.extra.push((k, v)),
            }
        }
        if loc.location.is_empty() {
            return Err(IrError::ExternalDataInvalid {
                tensor: name,
                reason: "no 'location' entry".into(),
            });
        }
        if !has_length {
            loc.length = u64::MAX; // "to the end of the file", resolved by the loader
        }
        Some(loc)
    } else {
        None
    };
    let data = if let Some(raw) = t.raw_data {
        TensorData::Raw(raw)
    } else if !t.float_data.is_empty() {
        TensorData::Float(t.float_data)
    } else if !t.int32_data.is_empty() {
        TensorData::Int32(t.int32_data)
    } else if !t.int64_data.is_empty() {
        TensorData::Int64(t.int64_data)
    } else if !t.double_data.is_empty() {
        TensorData::Double(t.double_data)
    } else if !t.uint64_data.is_empty() {
        TensorData::Uint64(t.uint64_data)
    } else if !t.string_data.is_empty() {
        TensorData::String(t.string_data)
    } else {
        TensorData::Empty
    };
    Ok(Tensor {
        name,
        dtype,
        dims: t.dims,
        data,
        doc_string: s(t.doc_string),
        metadata_props: props_in(t.metadata_props),
        segment: t
            .segment
            .map(|sg| (sg.begin.unwrap_or(0), sg.end.unwrap_or(0))),
        external,
    })
}

/// IR tensor to protobuf tensor, with its data inline (raw data shared, not copied).
pub fn tensor_to_proto(t: &Tensor) -> pb::TensorProto {
    let mut p = pb::TensorProto {
        dims: t.dims.clone(),
        data_type: Some(t.dtype.code()),
        name: opt(&t.name),
        doc_string: opt(&t.doc_string),
        metadata_props: props_out(&t.metadata_props),
        segment: t.segment.map(|(b, e)| pb::tensor_proto::Segment {
            begin: Some(b),
            end: Some(e),
        }),
        ..Default::default()
    };
    match &t.data {
        TensorData::Empty => {}
        TensorData::Raw(b) => p.raw_data = Some(b.clone()),
        TensorData::Float(v) => p.float_data = v.clone(),
        TensorData::Int32(v) => p.int32_data = v.clone(),
        TensorData::Int64(v) => p.int64_data = v.clone(),
        TensorData::Double(v) => p.double_data = v.clone(),
        TensorData::Uint64(v) => p.uint64_data = v.clone(),
        TensorData::String(v) => p.string_data = v.clone(),
    }
    p
}

fn value_info_from_proto(v: pb::ValueInfoProto) -> ValueInfo {
    ValueInfo {
        name: s(v.name),
        ty: v.r#type.map(type_from_proto),
        doc_string: s(v.doc_string),
        metadata_props: props_in(v.metadata_props),
    }
}

fn value_info_to_proto(v: &ValueInfo) -> pb::ValueInfoProto {
    pb::ValueInfoProto {
        name: Some(v.name.clone()),
        r#type: v.ty.as_ref().map(type_to_proto),
        doc_string: opt(&v.doc_string),
        metadata_props: props_out(&v.metadata_props),
    }
}

fn type_from_proto(t: pb::TypeProto) -> ValueType {
    match t.value {
        Some(pb::type_proto::Value::TensorType(tt)) => {
            let (shape, dim_denotations) = match tt.shape {
                None => (None, Vec::new()),
                Some(sh) => {
                    let mut dims = Vec::with_capacity(sh.dim.len());
                    let mut dens = Vec::with_capacity(sh.dim.len());
                    for d in sh.dim {
                        use pb::tensor_shape_proto::dimension::Value as V;
                        dims.push(match d.value {
                            Some(V::DimValue(v)) => Dim::Known(v),
                            Some(V::DimParam(p)) => Dim::Symbol(p),
                            None => Dim::Unknown,
                        });
                        dens.push(s(d.denotation));
                    }
                    if dens.iter().all(String::is_empty) {
                        dens.clear();
                    }
                    (Some(dims), dens)
                }
            };
            ValueType::Tensor {
                elem_type: DataType::from_code(tt.elem_type.unwrap_or(0)),
                shape,
                dim_denotations,
                denotation: s(t.denotation),
            }
        }
        value => ValueType::Other(pb::TypeProto {
            value,
            denotation: t.denotation,
        }),
    }
}

fn type_to_proto(t: &ValueType) -> pb::TypeProto {
    match t {
        ValueType::Other(p) => p.clone(),
        ValueType::Tensor {
            elem_type,
            shape,
            dim_denotations,
            denotation,
        } => pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: Some(elem_type.code()),
                shape: shape.as_ref().map(|dims| pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .enumerate()
                        .map(|(i, d)| {
                            use pb::tensor_shape_proto::dimension::Value as V;
                            pb::tensor_shape_proto::Dimension {
                                value: match d {
                                    Dim::Known(v) => Some(V::DimValue(*v)),
                                    Dim::Symbol(p) => Some(V::DimParam(p.clone())),
                                    Dim::Unknown => None,
                                },
                                denotation: dim_denotations.get(i).and_then(|d| opt(d)),
                            }
                        })
                        .collect(),
                }),
            })),
            denotation: opt(denotation),
        },
    }
}
