//! `transfuse`: optimize transformer ONNX models for ONNX Runtime, and check parity.

use clap::Parser;

fn main() {
    let cli = transfuse_cli::Cli::parse();
    if let Err(e) = transfuse_cli::run(cli) {
        // One line per cause, outermost first.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
