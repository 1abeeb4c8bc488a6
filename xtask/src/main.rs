//! `cargo xtask <command>`: the project's command line.
//!
//! Each subcommand lives in its own module, or in the library crate it drives (`transfuse-cli`
//! for optimize and parity, `transfuse-bench` for bench and models), and is registered in
//! [`Command`].

mod fp16_accuracy;
mod io_bench;
mod optimize;
mod ort_lib;
mod test_cmd;

use transfuse_bench::{models, paths};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    about = "transfuse: fuse transformer ONNX graphs for ONNX Runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Optimize a model (`transfuse optimize`; default: a bundled tiny BERT, written under target/).
    Optimize(optimize::Args),
    /// Time loading and saving of models, with peak memory (files written under target/).
    IoBench(io_bench::Args),
    /// Materialize the base-size skeleton models into full benchmark models under target/models.
    Models(models::Args),
    /// Provide the ONNX Runtime library (ORT_DYLIB_PATH, target/onnxruntime, or the PyPI wheel) and print its path.
    OrtLib(ort_lib::Args),
    /// Compare a model with a candidate (or with expected outputs) on the same inputs, in the reference interpreter or ONNX Runtime (`transfuse parity`).
    Parity(transfuse_cli::parity::Args),
    /// Benchmark latency of original, ONNX Runtime-optimized, peer-optimized and transfuse-optimized models (page under target/bench; --publish updates docs/benchmarks.md).
    Bench(transfuse_bench::Args),
    /// fp16 accuracy on real inputs: MiniLM sentence embeddings and ViT on photographs, f32 vs `--float16` (results under target/fp16-accuracy).
    Fp16Accuracy(fp16_accuracy::Args),
    /// Provision ONNX Runtime and the benchmark models, then run the whole test suite.
    Test(test_cmd::Args),
}

/// `bench`: a measuring run needs ONNX Runtime's library, provisioned here first (the bench
/// crate only locates it); `--render-only` does not.
fn bench(args: transfuse_bench::Args) -> anyhow::Result<()> {
    if !args.render_only {
        ort_lib::runtime()?;
    }
    transfuse_bench::run(args)
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Optimize(a) => optimize::run(a),
        Command::Models(a) => models::run(a),
        Command::OrtLib(a) => ort_lib::run(a),
        Command::Parity(a) => transfuse_cli::parity::run(a),
        Command::Bench(a) => bench(a),
        Command::IoBench(a) => io_bench::run(a),
        Command::Test(a) => test_cmd::run(a),
        Command::Fp16Accuracy(a) => fp16_accuracy::run(a),
    };
    if let Err(e) = result {
        // The exit statuses of `transfuse` (see `transfuse --help`).
        let code = transfuse_cli::exit_code(&e);
        if !transfuse_cli::is_broken_pipe(&e) {
            eprintln!("error: {}", transfuse_cli::error_message(&e));
        }
        std::process::exit(code);
    }
}
