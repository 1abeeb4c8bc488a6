//! `cargo xtask models`: materialize base-size skeletons into full benchmark models.
//!
//! Fill rule: every tensor named in the skeleton's `skeleton_fill` metadata entry gets
//! normally distributed values (mean 0, std 0.02) from a generator seeded from the model's
//! file name, so every machine materializes the same weights.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use transfuse_ir::{DataType, Model, Tensor};

use crate::paths;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Skeleton names to materialize (default: all in testdata/models/skeleton).
    names: Vec<String>,
    /// Rewrite models that already exist.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args) -> Result<()> {
    let paths = materialize(&args.names, args.force)?;
    for p in paths {
        println!("{}", p.display());
    }
    Ok(())
}

/// Names of the skeletons in `testdata/models/skeleton`, sorted.
pub fn skeleton_names() -> Result<Vec<String>> {
    let dir = paths::testdata_models().join("skeleton");
    let entries = std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".onnx")
                .map(String::from)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Materializes the named skeletons (all when empty) and returns the model paths.
/// Existing outputs are reused unless `force`; a model about to be written is announced on
/// stderr with its path (base-size models take hundreds of MB).
pub fn materialize(names: &[String], force: bool) -> Result<Vec<PathBuf>> {
    let dir = paths::testdata_models().join("skeleton");
    let all = skeleton_names()?;
    let chosen = if names.is_empty() { &all[..] } else { names };
    let out_dir = paths::materialized_models();
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut out = Vec::new();
    for name in chosen {
        if !all.contains(name) {
            bail!(
                "no skeleton named '{name}' in {} (have: {})",
                dir.display(),
                all.join(", ")
            );
        }
        let dest = out_dir.join(format!("{name}.onnx"));
        if force || !dest.exists() {
            eprintln!("materializing {name} into {}", dest.display());
            materialize_one(&dir.join(format!("{name}.onnx")), &dest, name)?;
        }
        out.push(dest);
    }
    Ok(out)
}

fn materialize_one(src: &Path, dest: &Path, name: &str) -> Result<()> {
    let mut model = Model::load(src).with_context(|| format!("loading {}", src.display()))?;
    let fill: Vec<String> = model
        .metadata("skeleton_fill")
        .with_context(|| format!("{} has no skeleton_fill metadata", src.display()))?
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x1000_0000_01b3)
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0f32, 0.02).context("normal distribution")?;
    for tname in &fill {
        let t =
            model.graph.initializers.get_mut(tname).with_context(|| {
                format!("skeleton_fill names '{tname}', which is no initializer")
            })?;
        if t.dtype != DataType::Float {
            bail!("skeleton tensor '{tname}' is {}, expected f32", t.dtype);
        }
        let n = t.numel()?;
        let values: Vec<f32> = (0..n).map(|_| normal.sample(&mut rng)).collect();
        let filled = Tensor::from_f32(tname.clone(), t.dims.clone(), &values);
        *t = Arc::new(filled);
    }
    model.metadata_props.retain(|(k, _)| k != "skeleton_fill");
    model
        .save(dest)
        .with_context(|| format!("saving {}", dest.display()))?;
    Ok(())
}
