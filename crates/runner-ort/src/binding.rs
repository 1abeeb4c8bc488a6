//! I/O binding: inputs copied to the execution provider's device once, outputs bound to
//! device buffers allocated once, so a timed run moves no data between host and device and a
//! CUDA graph capture sees the same addresses on every run.

use std::time::{Duration, Instant};

use ort::memory::{AllocationDevice, Allocator, AllocatorType, MemoryInfo, MemoryType};
use ort::session::IoBinding;
use ort::value::{DynTensor, DynTensorValueType};

use crate::cuda::is_capture_refusal;
use crate::{ExecutionProvider, OrtError, PreparedInputs, Result, Session};

/// A session's inputs and outputs bound to device memory (see [`Session::bind`]).
#[derive(Debug)]
pub struct BoundRun {
    binding: IoBinding,
    /// The device copies of the inputs, kept alive while bound.
    _inputs: Vec<DynTensor>,
}

impl Session {
    /// Copies `inputs` to the session's device (the GPU for CUDA; the host for the CPU),
    /// runs the model once with outputs on the device to learn their shapes, then binds
    /// device buffers of those shapes as the outputs of every later [`Session::time_bound`].
    ///
    /// With CUDA graph capture on, ONNX Runtime runs the first run normally and captures a
    /// later one; a refusal at that first run is [`OrtError::GraphCaptureRefused`].
    pub fn bind(&mut self, inputs: &PreparedInputs) -> Result<BoundRun> {
        let (device, device_id) = match self.provider {
            ExecutionProvider::Cpu => (AllocationDevice::CPU, 0),
            ExecutionProvider::Cuda { device_id } => (AllocationDevice::CUDA, device_id),
        };
        let bind_error = |what: &str, e: ort::Error| OrtError::Binding(format!("{what}: {e}"));
        let memory = MemoryInfo::new(
            device.clone(),
            device_id,
            AllocatorType::Device,
            MemoryType::Default,
        )
        .map_err(|e| bind_error("device memory description", e))?;
        let mut binding = self
            .inner
            .create_binding()
            .map_err(|e| bind_error("creating the binding", e))?;
        let mut held = Vec::with_capacity(inputs.values.len());
        for (name, value) in &inputs.values {
            let tensor = value
                .view()
                .downcast::<DynTensorValueType>()
                .map_err(|e| bind_error(name, e))?;
            let on_device = tensor
                .to(device.clone(), device_id)
                .map_err(|e| bind_error(&format!("copying input '{name}' to the device"), e))?;
            binding
                .bind_input(name.as_str(), &on_device)
                .map_err(|e| bind_error(&format!("binding input '{name}'"), e))?;
            held.push(on_device);
        }
        for name in self.output_names().to_vec() {
            binding
                .bind_output_to_device(name.as_str(), &memory)
                .map_err(|e| bind_error(&format!("binding output '{name}'"), e))?;
        }
        // The first run: no capture yet; it tells the output shapes and element types.
        let capture =
            self.cuda.cuda_graph && matches!(self.provider, ExecutionProvider::Cuda { .. });
        let shapes: Vec<(String, ort::value::TensorElementType, Vec<i64>)> = {
            let outputs = self
                .inner
                .run_binding(&binding)
                .map_err(|e| run_error(capture, "the first run", e))?;
            let mut shapes = Vec::with_capacity(outputs.len());
            for (name, value) in &outputs {
                let tensor = value
                    .view()
                    .downcast::<DynTensorValueType>()
                    .map_err(|e| bind_error(name, e))?;
                shapes.push((
                    name.to_string(),
                    *tensor.data_type(),
                    tensor.shape().to_vec(),
                ));
            }
            shapes
        };
        let allocator = Allocator::new(&self.inner, memory)
            .map_err(|e| bind_error("creating the device allocator", e))?;
        for (name, ty, dims) in shapes {
            let buffer = DynTensor::new(&allocator, ty, dims)
                .map_err(|e| bind_error(&format!("allocating output '{name}'"), e))?;
            binding
                .bind_output(name.as_str(), buffer)
                .map_err(|e| bind_error(&format!("binding output '{name}'"), e))?;
        }
        Ok(BoundRun {
            binding,
            _inputs: held,
        })
    }

    /// Runs the model on bound inputs and outputs and returns the wall time of the call,
    /// including the wait for the device to finish (no host copies). With CUDA graph capture
    /// on, the first call after [`Session::bind`] is the one captured; a refusal there is
    /// [`OrtError::GraphCaptureRefused`].
    pub fn time_bound(&mut self, bound: &BoundRun) -> Result<Duration> {
        let capture =
            self.cuda.cuda_graph && matches!(self.provider, ExecutionProvider::Cuda { .. });
        let start = Instant::now();
        let outputs = self
            .inner
            .run_binding(&bound.binding)
            .map_err(|e| run_error(capture, "the capture", e))?;
        bound
            .binding
            .synchronize_outputs()
            .map_err(|e| OrtError::Run(e.to_string()))?;
        let elapsed = start.elapsed();
        drop(outputs);
        Ok(elapsed)
    }
}

/// A run's error; a refused CUDA graph capture gets its own variant.
fn run_error(capture: bool, stage: &'static str, e: ort::Error) -> OrtError {
    let message = e.to_string();
    if capture && is_capture_refusal(&message) {
        OrtError::GraphCaptureRefused { stage, message }
    } else {
        OrtError::Run(message)
    }
}
