//! `crdgen`: writes the CRDs generated from the Rust types to `crds/<plural>.ordinaut.dev.yaml`
//! at the workspace root, or prints them to stdout with `--stdout`.
//!
//! Usage: `cargo run -p ordinaut-api --bin crdgen [-- --stdout | --out DIR]`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut stdout = false;
    let mut out_dir = ordinaut_api::crd::default_crds_dir();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--stdout" => stdout = true,
            "--out" => match args.next() {
                Some(dir) => out_dir = PathBuf::from(dir),
                None => return usage("--out needs a directory"),
            },
            "-h" | "--help" => {
                println!(
                    "crdgen: write Ordinaut's CRDs to {} (default)\n  --stdout   print them instead, as one multi-document YAML\n  --out DIR  write them to DIR",
                    out_dir.display()
                );
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument `{other}`")),
        }
    }
    let rendered = match ordinaut_api::render_all() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("crdgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    if stdout {
        let docs: Vec<&str> = rendered.iter().map(|c| c.yaml.as_str()).collect();
        print!("{}", docs.join("---\n"));
        return ExitCode::SUCCESS;
    }
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("crdgen: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    for crd in &rendered {
        let path = out_dir.join(&crd.file_name);
        if let Err(e) = std::fs::write(&path, &crd.yaml) {
            eprintln!("crdgen: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("crdgen: {problem}; usage: crdgen [--stdout | --out DIR]");
    ExitCode::from(2)
}
