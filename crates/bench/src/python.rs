//! The Python side of the benchmark: a virtual environment under `target/bench/venv` with the
//! peer optimizer (`onnxruntime==1.31.1`'s `onnxruntime.transformers.optimizer`) and OpenVINO,
//! or an existing interpreter given with `--peer-python`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, Result, anyhow, bail};

use super::results::Tool;
use crate::paths;

/// What the peer optimizer needs (found by running it: `sympy` for its symbolic shape
/// inference; `numpy`, `packaging`, `protobuf` come with `onnxruntime` and `onnx`).
pub const PEER_PACKAGES: [&str; 3] = ["onnxruntime==1.31.1", "onnx==1.23.2", "sympy==1.14.0"];

/// The OpenVINO row's package.
pub const OPENVINO_PACKAGE: &str = "openvino==2026.4.1";

/// The driver script that runs OpenVINO for the benchmark.
pub fn openvino_driver() -> PathBuf {
    paths::root()
        .join("xtask")
        .join("bench")
        .join("openvino_driver.py")
}

/// The interpreter and what it can run.
#[derive(Debug, Clone)]
pub struct PythonEnv {
    /// The interpreter (absent when none could be set up).
    pub python: Option<PathBuf>,
    /// The peer optimizer's availability and onnxruntime version.
    pub peer: Tool,
    /// OpenVINO's availability and version.
    pub openvino: Tool,
}

/// Sets up the interpreter: `given` as is, or the virtual environment under
/// `target/bench/venv`, created and filled on first use. Nothing here is fatal: what cannot be
/// set up is reported as unavailable, with the reason.
pub fn prepare(
    given: Option<&Path>,
    want_openvino: bool,
    log: &mut dyn FnMut(String),
) -> PythonEnv {
    let python = match given {
        Some(p) => Ok(p.to_path_buf()),
        None => venv(log),
    };
    let python = match python {
        Ok(p) => p,
        Err(e) => {
            let tool = Tool::unavailable(None, format!("{e:#}"));
            return PythonEnv {
                python: None,
                peer: tool.clone(),
                openvino: tool,
            };
        }
    };
    let shown = Some(python.display().to_string());
    let peer = Tool::probed(
        shown.clone(),
        probe(
            &python,
            "import onnxruntime, onnx, sympy, onnxruntime.transformers.optimizer; print(onnxruntime.__version__)",
        ),
    );
    let openvino = if !want_openvino {
        Tool::unavailable(shown, "not asked for (--no-openvino)")
    } else {
        if given.is_none() && probe(&python, "import openvino").is_err() {
            log(format!(
                "installing {OPENVINO_PACKAGE} into the benchmark's virtual environment"
            ));
            if let Err(e) = pip_install(&python, &[OPENVINO_PACKAGE]) {
                log(format!("OpenVINO is not installable here: {e:#}"));
            }
        }
        let version = probe(
            &python,
            "import openvino, onnx; print(openvino.__version__)",
        );
        Tool::probed(shown, version)
    };
    PythonEnv {
        python: Some(python),
        peer,
        openvino,
    }
}

/// `target/bench/venv/bin/python`, creating the environment and installing
/// [`PEER_PACKAGES`] when they are not there yet.
fn venv(log: &mut dyn FnMut(String)) -> Result<PathBuf> {
    let dir = paths::target_dir().join("bench").join("venv");
    let python = dir.join("bin").join("python");
    if !python.is_file() {
        log(format!(
            "creating a Python virtual environment in {}",
            dir.display()
        ));
        let output = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .output()
            .context("running python3 -m venv (is Python 3 installed?)")?;
        if !output.status.success() {
            bail!("python3 -m venv failed: {}", last_line(&output.stderr));
        }
    }
    let marker = dir.join(".transfuse-packages");
    let wanted = PEER_PACKAGES.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() != Some(wanted.as_str()) {
        log(format!("installing {wanted} into {}", dir.display()));
        pip_install(&python, &PEER_PACKAGES)?;
        std::fs::write(&marker, &wanted)
            .with_context(|| format!("writing {}", marker.display()))?;
    }
    Ok(python)
}

fn pip_install(python: &Path, packages: &[&str]) -> Result<()> {
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .output()
        .with_context(|| format!("running {} -m pip", python.display()))?;
    if !output.status.success() {
        bail!(
            "pip install {} failed: {}",
            packages.join(" "),
            last_line(&output.stderr)
        );
    }
    Ok(())
}

/// Runs `code` in `python` and returns its trimmed stdout.
fn probe(python: &Path, code: &str) -> Result<String> {
    let output = Command::new(python)
        .args(["-c", code])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !output.status.success() {
        bail!(
            "{} cannot run the check ({}): {}",
            python.display(),
            code,
            last_line(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// The last non-empty line of a process's output, for one-line error messages.
pub fn last_line(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_string()
}

/// A running OpenVINO driver (`xtask/bench/openvino_driver.py`): one compiled model, asked
/// over stdin to run once (`time`) or to compute outputs for inputs in a directory (`infer`).
#[derive(Debug)]
pub struct OpenVino {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl OpenVino {
    /// Starts the driver on `model` with `threads` inference threads; the timed inputs are the
    /// `input_N.pb` files in `inputs`. Its messages go to `log_file`.
    pub fn start(
        python: &Path,
        model: &Path,
        threads: usize,
        precision: &str,
        inputs: &Path,
        log_file: &Path,
    ) -> Result<OpenVino> {
        let script = openvino_driver();
        let log = std::fs::File::create(log_file)
            .with_context(|| format!("creating {}", log_file.display()))?;
        let threads = threads.to_string();
        let mut child = Command::new(python)
            .arg("-u")
            .arg(&script)
            .args([OsStr::new("--model"), model.as_os_str()])
            .args(["--threads", &threads, "--precision", precision])
            .args([OsStr::new("--inputs"), inputs.as_os_str()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            bail!("the OpenVINO driver's pipes could not be opened");
        };
        let mut driver = OpenVino {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        };
        let ready = driver
            .reply()
            .with_context(|| format!("starting OpenVINO (its log: {})", log_file.display()))?;
        if !ready.starts_with("ready") {
            bail!("the OpenVINO driver said '{ready}' instead of ready");
        }
        Ok(driver)
    }

    fn reply(&mut self) -> Result<String> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading from the OpenVINO driver")?;
        if n == 0 {
            bail!("the OpenVINO driver exited");
        }
        let line = line.trim().to_string();
        match line.strip_prefix("error ") {
            Some(message) => Err(anyhow!("OpenVINO: {message}")),
            None => Ok(line),
        }
    }

    fn ask(&mut self, command: &str) -> Result<String> {
        writeln!(self.stdin, "{command}").context("writing to the OpenVINO driver")?;
        self.stdin
            .flush()
            .context("writing to the OpenVINO driver")?;
        self.reply()
    }

    /// One timed inference on the timed inputs, ms (timed inside the driver).
    pub fn time(&mut self) -> Result<f64> {
        let reply = self.ask("time")?;
        reply
            .parse()
            .with_context(|| format!("the OpenVINO driver answered '{reply}' to time"))
    }

    /// Runs the model on `input_N.pb` in `inputs` and writes `output_N.pb` into `outputs`.
    pub fn infer(&mut self, inputs: &Path, outputs: &Path) -> Result<()> {
        let reply = self.ask(&format!(
            "infer\t{}\t{}",
            inputs.display(),
            outputs.display()
        ))?;
        if reply != "ok" {
            bail!("the OpenVINO driver answered '{reply}' to infer");
        }
        Ok(())
    }
}

impl Drop for OpenVino {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        for _ in 0..100 {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
