//! The feeds folder on local disk as a publish [`Target`]: each document
//! replaced atomically (temp file in the same folder, fsync, rename), each
//! folder that received one fsynced once per round.

use super::{Target, sync_dir, write_all_synced};
use crate::render::Document;
use anyhow::{Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Mutex;

/// Rounds smaller than this (an event's) have their hashes remembered;
/// larger ones, the same rounds that share one `syncfs`, do not (see
/// [`Folder::write`]).
const REMEMBER_BELOW: usize = super::atomic::SHARED_SYNC_FROM;

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
        let files: Vec<(PathBuf, &[u8])> = docs
            .iter()
            .map(|(doc, _)| (self.dir.join(&doc.path), doc.bytes.as_slice()))
            .collect();
        write_all_synced(&files)?;
        // The renames are durable once their folders are fsynced: once per
        // folder, not per file.
        let dirs: BTreeSet<PathBuf> = docs
            .iter()
            .filter_map(|(doc, _)| self.dir.join(&doc.path).parent().map(PathBuf::from))
            .collect();
        for dir in dirs {
            sync_dir(&dir);
        }
        // A large round (a build, a start's repair) writes documents no
        // later round may look at (100,000 ninjs documents, thousands of
        // archive pages): remembering their hashes was 12 MB of a 100k
        // build's peak. A later round that asks reads the file once.
        let remember = docs.len() < REMEMBER_BELOW;
        let mut on_disk = self.on_disk.lock().expect("on_disk lock");
        for (doc, hash) in docs {
            if remember {
                on_disk.insert(doc.path.clone(), *hash);
            } else {
                on_disk.remove(&doc.path);
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::DocKind;

    fn doc(path: &str, body: &str) -> Document {
        Document {
            path: path.into(),
            kind: DocKind::Ninjs,
            bytes: body.as_bytes().to_vec(),
            entries: 1,
            updated: None,
        }
    }

    fn write(folder: &mut Folder, docs: &[Document]) {
        let hashed: Vec<(&Document, blake3::Hash)> =
            docs.iter().map(|d| (d, blake3::hash(&d.bytes))).collect();
        folder.write(&hashed).unwrap();
    }

    /// A large round's hashes are not remembered, and any remembered
    /// before are forgotten: what the folder then says it holds is what is
    /// on disk, never a stale hash.
    #[test]
    fn after_a_large_round_the_folder_answers_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        let mut folder = Folder::new(dir.path().to_path_buf()).unwrap();
        // Remembered (a small round), then rewritten by a large one.
        write(&mut folder, &[doc("ninjs/0.json", "old")]);
        let large: Vec<Document> = (0..REMEMBER_BELOW)
            .map(|i| doc(&format!("ninjs/{i}.json"), &format!("new {i}")))
            .collect();
        write(&mut folder, &large);
        assert!(folder.on_disk.lock().unwrap().is_empty());
        assert!(!folder.holds("ninjs/0.json", &blake3::hash(b"old")));
        assert!(folder.holds("ninjs/0.json", &blake3::hash(b"new 0")));
        assert!(folder.holds("ninjs/7.json", &blake3::hash(b"new 7")));
        // A small round after it is remembered again.
        write(&mut folder, &[doc("ninjs/7.json", "newer")]);
        assert!(folder.holds("ninjs/7.json", &blake3::hash(b"newer")));
        assert_eq!(
            std::fs::read(dir.path().join("ninjs/7.json")).unwrap(),
            b"newer"
        );
    }
}
