//! Reading models from files and writing them back.
//!
//! Loading memory-maps the file and decodes from that map, so weights are slices of it and
//! are never copied. Saving streams: weights are written straight from their buffers and no
//! encoded copy of the whole model is built in memory. Saving writes to a temporary file in
//! the target directory and renames it into place, so a failure leaves no partial model; the
//! temporary files are staged (see [`crate::staging`]) so an interrupted program can remove them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use prost::Message;
use transfuse_proto as pb;

use crate::convert::{model_from_proto, model_to_proto};
use crate::staging;
use crate::tensor::TensorData;
use crate::{IrError, Model, Result, Tensor};

/// How to store tensor data when saving.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ExternalData {
    /// Keep tensors that were loaded from external data external, and with them every other
    /// tensor of at least 1 KiB (weights created after loading); in a model without external
    /// data, move every tensor of at least 1 KiB out when the model would exceed protobuf's
    /// 2 GiB limit. Others stay inline.
    #[default]
    Auto,
    /// Everything inline (fails for models over 2 GiB).
    Inline,
    /// Tensors of at least `min_bytes` bytes go to the external data file.
    External {
        /// Size threshold in bytes.
        min_bytes: usize,
    },
}

/// Options of [`Model::save_with`].
#[derive(Clone, Debug)]
pub struct SaveOptions {
    /// Where tensor data goes.
    pub external_data: ExternalData,
    /// Under [`ExternalData::Auto`], the most tensor bytes kept inline (protobuf's 2 GiB
    /// message limit less headroom for the graph).
    pub inline_budget: usize,
    /// `fsync` the files before renaming them into place.
    pub sync: bool,
}

impl Default for SaveOptions {
    fn default() -> Self {
        SaveOptions {
            external_data: ExternalData::Auto,
            inline_budget: INLINE_BUDGET,
            sync: false,
        }
    }
}

/// Protobuf's hard limit on one message; larger models need external data.
const PROTOBUF_LIMIT: usize = (1 << 31) - 1;
/// Leave headroom for the graph structure itself.
const INLINE_BUDGET: usize = PROTOBUF_LIMIT - (64 << 20);
/// External tensors start at multiples of this, so runtimes can map them.
const EXTERNAL_ALIGN: u64 = 4096;

impl Model {
    /// Loads a model file, resolving external data relative to the file's directory.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = map_file(path)?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Model::from_bytes(bytes, Some(&base))
    }

    /// Decodes a model from bytes. External data is resolved against `base_dir`; without one,
    /// a model that uses external data is an error.
    pub fn from_bytes(bytes: Bytes, base_dir: Option<&Path>) -> Result<Model> {
        if bytes.is_empty() {
            return Err(IrError::NotOnnx("the file is empty".into()));
        }
        let proto = pb::ModelProto::decode(bytes)?;
        let mut model = model_from_proto(proto)?;
        resolve_external_data(&mut model, base_dir)?;
        check_tensor_sizes(&model)?;
        model.graph.check()?;
        Ok(model)
    }

    /// Saves with default options (see [`ExternalData::Auto`]).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        self.save_with(path, &SaveOptions::default())
    }

    /// Saves the model. The file (and its external data file `<name>.data`, if any) appears
    /// only when everything was written.
    pub fn save_with(&self, path: impl AsRef<Path>, options: &SaveOptions) -> Result<()> {
        let path = path.as_ref();
        let mut proto = model_to_proto(self);
        let graph = proto.graph.take().unwrap_or_default();
        let tensors: Vec<&Tensor> = self
            .graph
            .initializers
            .values()
            .map(|t| t.as_ref())
            .collect();
        let external = choose_external(&tensors, &options.external_data, options.inline_budget);

        let data_name = format!(
            "{}.data",
            path.file_name()
                .map_or("model.onnx".into(), |n| n.to_string_lossy())
        );
        let data_path = path.with_file_name(&data_name);
        let mut pending = Vec::new();

        // External tensors: write their bytes first and rewrite their protos as references.
        let mut graph = graph;
        if external.iter().any(|&e| e) {
            let tmp = staging::temp_path(&data_path);
            let result = write_external(
                &tmp,
                &tensors,
                &external,
                &data_name,
                &mut graph,
                options.sync,
            );
            if let Err(e) = result {
                staging::discard(&[&tmp]);
                return Err(e);
            }
            pending.push((tmp, data_path));
        }

        let tmp = staging::temp_path(path);
        let written = write_model_file(&tmp, &proto, graph, options.sync);
        pending.push((tmp, path.to_path_buf()));
        if let Err(e) = written {
            let tmps: Vec<&Path> = pending.iter().map(|(t, _)| t.as_path()).collect();
            staging::discard(&tmps);
            return Err(e);
        }
        staging::commit(&pending)
    }

    /// Encodes the whole model into one buffer (inline data). For files prefer [`Model::save`],
    /// which streams.
    pub fn to_bytes(&self) -> Vec<u8> {
        model_to_proto(self).encode_to_vec()
    }
}

fn write_model_file(
    tmp: &Path,
    proto: &pb::ModelProto,
    graph: pb::GraphProto,
    sync: bool,
) -> Result<()> {
    let file = staging::create(tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    write_model(&mut w, proto, graph).map_err(|e| IrError::io("writing", tmp, e))?;
    let file = w
        .into_inner()
        .map_err(|e| IrError::io("writing", tmp, e.into_error()))?;
    if sync {
        file.sync_all()
            .map_err(|e| IrError::io("syncing", tmp, e))?;
    }
    Ok(())
}

fn map_file(path: &Path) -> Result<Bytes> {
    let file = File::open(path).map_err(|e| IrError::io("opening", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| IrError::io("reading", path, e))?
        .len();
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the map is read-only; like every mmap-based reader, we rely on the file not
    // being truncated or rewritten by another process while the model is alive.
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| IrError::io("mapping", path, e))?;
    Ok(Bytes::from_owner(map))
}

fn resolve_external_data(model: &mut Model, base_dir: Option<&Path>) -> Result<()> {
    let mut files: HashMap<PathBuf, Bytes> = HashMap::new();
    for tensor in model.graph.initializers.values_mut() {
        let Some(loc) = tensor.external.clone() else {
            continue;
        };
        let invalid = |reason: String| IrError::ExternalDataInvalid {
            tensor: tensor.name.clone(),
            reason,
        };
        let rel = Path::new(&loc.location);
        if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(invalid(format!(
                "location '{}' leaves the model's directory",
                loc.location
            )));
        }
        let base = base_dir
            .ok_or_else(|| invalid("no directory to resolve external data against".into()))?;
        let path = base.join(rel);
        let data = match files.get(&path) {
            Some(b) => b.clone(),
            None => {
                if !path.exists() {
                    return Err(IrError::ExternalDataMissing {
                        tensor: tensor.name.clone(),
                        path,
                    });
                }
                let b = map_file(&path)?;
                files.insert(path.clone(), b.clone());
                b
            }
        };
        let start = usize::try_from(loc.offset).map_err(|_| invalid("offset too large".into()))?;
        let end = if loc.length == u64::MAX {
            data.len()
        } else {
            usize::try_from(loc.length)
                .ok()
                .and_then(|l| start.checked_add(l))
                .unwrap_or(usize::MAX)
        };
        if start > data.len() || end > data.len() || start > end {
            return Err(invalid(format!(
                "bytes {start}..{end} lie outside '{}' ({} bytes)",
                path.display(),
                data.len()
            )));
        }
        let t = std::sync::Arc::make_mut(tensor);
        t.data = TensorData::Raw(data.slice(start..end));
        if let Some(l) = t.external.as_mut() {
            l.length = (end - start) as u64;
        }
    }
    Ok(())
}

fn check_tensor_sizes(model: &Model) -> Result<()> {
    for t in model.graph.initializers.values() {
        if let (TensorData::Raw(b), Some(size)) = (&t.data, t.dtype.size_of()) {
            let n = t.numel()?;
            if n.checked_mul(size) != Some(b.len()) {
                return Err(IrError::tensor(
                    &t.name,
                    format!(
                        "raw data has {} bytes, but {} x {:?} needs {}",
                        b.len(),
                        t.dtype,
                        t.dims,
                        n * size
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Which initializers go to the external file, parallel to `tensors`.
fn choose_external(tensors: &[&Tensor], policy: &ExternalData, inline_budget: usize) -> Vec<bool> {
    let has_bytes = |t: &Tensor| matches!(t.data, TensorData::Raw(_)) || t.raw_bytes().is_ok();
    match policy {
        ExternalData::Inline => vec![false; tensors.len()],
        ExternalData::External { min_bytes } => tensors
            .iter()
            .map(|t| t.byte_len() >= *min_bytes && has_bytes(t))
            .collect(),
        ExternalData::Auto => {
            let total: usize = tensors.iter().map(|t| t.byte_len()).sum();
            if total > inline_budget {
                tensors
                    .iter()
                    .map(|t| t.byte_len() >= 1024 && has_bytes(t))
                    .collect()
            } else if tensors.iter().any(|t| t.external.is_some()) {
                // The model keeps its weights outside: so do tensors created since it was
                // loaded (weights a rewrite combined), from the same size on.
                tensors
                    .iter()
                    .map(|t| (t.external.is_some() || t.byte_len() >= 1024) && has_bytes(t))
                    .collect()
            } else {
                vec![false; tensors.len()]
            }
        }
    }
}

fn write_external(
    tmp: &Path,
    tensors: &[&Tensor],
    external: &[bool],
    location: &str,
    graph: &mut pb::GraphProto,
    sync: bool,
) -> Result<()> {
    let file = staging::create(tmp)?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut offset = 0u64;
    let zeros = [0u8; EXTERNAL_ALIGN as usize];
    for ((t, &ext), proto) in tensors
        .iter()
        .zip(external)
        .zip(graph.initializer.iter_mut())
    {
        if !ext {
            continue;
        }
        let bytes = t.raw_bytes()?;
        let pad = (EXTERNAL_ALIGN - offset % EXTERNAL_ALIGN) % EXTERNAL_ALIGN;
        w.write_all(&zeros[..pad as usize])
            .map_err(|e| IrError::io("writing", tmp, e))?;
        offset += pad;
        w.write_all(&bytes)
            .map_err(|e| IrError::io("writing", tmp, e))?;
        let mut entries = vec![
            ("location".to_string(), location.to_string()),
            ("offset".to_string(), offset.to_string()),
            ("length".to_string(), bytes.len().to_string()),
        ];
        entries.extend(t.external.iter().flat_map(|l| l.extra.iter().cloned()));
        proto.raw_data = None;
        proto.float_data.clear();
        proto.int32_data.clear();
        proto.int64_data.clear();
        proto.double_data.clear();
        proto.uint64_data.clear();
        proto.data_location = Some(pb::tensor_proto::DataLocation::External as i32);
        proto.external_data = entries
            .into_iter()
            .map(|(k, v)| pb::StringStringEntryProto {
                key: Some(k),
                value: Some(v),
            })
            .collect();
        offset += bytes.len() as u64;
    }
    let file = w
        .into_inner()
        .map_err(|e| IrError::io("writing", tmp, e.into_error()))?;
    if sync {
        file.sync_all()
            .map_err(|e| IrError::io("syncing", tmp, e))?;
    }
    Ok(())
}

/// Writes `model` (whose graph was taken out into `graph`) field by field. Raw tensor data
/// is written directly from its buffer; only small messages are encoded into a scratch buffer.
fn write_model(
    w: &mut impl Write,
    model: &pb::ModelProto,
    mut graph: pb::GraphProto,
) -> std::io::Result<()> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut buf = Vec::with_capacity(1 << 16);
    model.encode(&mut buf).map_err(std::io::Error::other)?;
    w.write_all(&buf)?;

    buf.clear();
    encode_key(7, WireType::LengthDelimited, &mut buf);
    encode_varint(graph.encoded_len() as u64, &mut buf);
    let nodes = std::mem::take(&mut graph.node);
    let initializers = std::mem::take(&mut graph.initializer);
    for node in &nodes {
        prost::encoding::message::encode(1, node, &mut buf);
        if buf.len() > (1 << 16) {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    for tensor in &initializers {
        encode_key(5, WireType::LengthDelimited, &mut buf);
        encode_varint(tensor.encoded_len() as u64, &mut buf);
        match &tensor.raw_data {
            Some(raw) if raw.len() > 4096 => {
                let header = pb::TensorProto {
                    raw_data: None,
                    ..tensor.clone()
                };
                header.encode(&mut buf).map_err(std::io::Error::other)?;
                encode_key(9, WireType::LengthDelimited, &mut buf);
                encode_varint(raw.len() as u64, &mut buf);
                w.write_all(&buf)?;
                buf.clear();
                w.write_all(raw)?;
            }
            _ => tensor.encode(&mut buf).map_err(std::io::Error::other)?,
        }
        if buf.len() > (1 << 16) {
            w.write_all(&buf)?;
            buf.clear();
        }
    }
    graph.encode(&mut buf).map_err(std::io::Error::other)?;
    w.write_all(&buf)?;
    w.flush()
}
