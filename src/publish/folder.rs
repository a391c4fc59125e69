//! The feeds folder on local disk as a publish [`Target`]: each document
//! replaced atomically (temp file in the same folder, fsync, rename), each
//! folder that received one fsynced once per round.

use super::{Target, sync_dir, write_synced};
use crate::render::Document;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

pub struct Folder {
    dir: PathBuf,
    /// Content hash of what is on disk, per path; filled lazily from disk
    /// (the first round after a start reads each file once).
    on_disk: Mutex<HashMap<String, blake3::Hash>>,
}

impl Folder {
    pub fn new(dir: PathBuf) -> Result<Folder> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the feeds folder {}", dir.display()))?;
        Ok(Folder {
            dir,
            on_disk: Mutex::default(),
        })
    }
}

impl Target for Folder {
    fn describe(&self) -> String {
        format!("the feeds folder {}", self.dir.display())
    }

    fn holds(&self, path: &str, hash: &blake3::Hash) -> bool {
        let known = self
            .on_disk
            .lock()
            .expect("on_disk lock")
            .get(path)
            .copied();
        let known = known.or_else(|| {
            let h = std::fs::read(self.dir.join(path))
                .ok()
                .map(|b| blake3::hash(&b))?;
            self.on_disk
                .lock()
                .expect("on_disk lock")
                .insert(path.to_string(), h);
            Some(h)
        });
        known == Some(*hash)
    }

    fn write(&mut self, docs: &[(&Document, blake3::Hash)]) -> Result<()> {
        use rayon::prelude::*;
        docs.par_iter()
            .try_for_each(|(doc, _)| write_synced(&self.dir.join(&doc.path), &doc.bytes))?;
        // The renames are durable once their folders are fsynced: once per
        // folder, not per file.
        let dirs: BTreeSet<PathBuf> = docs
            .iter()
            .filter_map(|(doc, _)| self.dir.join(&doc.path).parent().map(PathBuf::from))
            .collect();
        for dir in dirs {
            sync_dir(&dir);
        }
        let mut on_disk = self.on_disk.lock().expect("on_disk lock");
        for (doc, hash) in docs {
            on_disk.insert(doc.path.clone(), *hash);
        }
        Ok(())
    }

    fn remove(&mut self, paths: &[&str]) -> Result<()> {
        let mut dirs = BTreeSet::new();
        for path in paths {
            let file = self.dir.join(path);
            match std::fs::remove_file(&file) {
                Ok(()) => {
                    if let Some(dir) = file.parent() {
                        dirs.insert(dir.to_path_buf());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", file.display()));
                }
            }
            self.on_disk.lock().expect("on_disk lock").remove(*path);
        }
        for dir in dirs {
            sync_dir(&dir);
        }
        Ok(())
    }
}
