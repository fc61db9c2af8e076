//! Which database `ordinaut runs` and `ordinaut task` work on: `--database-url` (or
//! `DATABASE_URL`), else the one of the `ordinaut dev` running on `--data-dir`.

use std::path::PathBuf;

use anyhow::anyhow;
use clap::Args;
use ordinaut_store::Store;

use crate::CliError;
use crate::dev::state;

/// Where to find Ordinaut's database.
#[derive(Debug, Args)]
pub struct Target {
    /// Ordinaut's PostgreSQL. Default: the database of the `ordinaut dev` running on
    /// --data-dir.
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// The data folder of the `ordinaut dev` to talk to.
    #[arg(
        long,
        env = "ORDINAUT_DATA_DIR",
        default_value = ".ordinaut",
        global = true
    )]
    pub data_dir: PathBuf,
}

impl Target {
    /// Connects to the database.
    pub async fn store(&self) -> Result<Store, CliError> {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => match state::read(&self.data_dir) {
                Some(s) => s.database_url,
                None => {
                    return Err(CliError::failed(anyhow!(
                        "no database: no `ordinaut dev` is running on {} (no live {}); start one \
                         with `ordinaut dev DIR`, or pass --database-url",
                        self.data_dir.display(),
                        state::path(&self.data_dir).display()
                    )));
                }
            },
        };
        let store = Store::connect(&url, 2).await.map_err(CliError::failed)?;
        Ok(store)
    }
}

/// `NS/NAME`, or `NAME` in namespace `default`.
pub fn task_ref(s: &str) -> Result<(String, String), String> {
    let (ns, name) = match s.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => ("default", s),
    };
    if ns.is_empty() || name.is_empty() || name.contains('/') {
        return Err(format!(
            "`{s}`: write NAMESPACE/NAME (or NAME for namespace default)"
        ));
    }
    Ok((ns.to_string(), name.to_string()))
}

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::failed)
}
