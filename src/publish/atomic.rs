//! Crash-safe file replacement.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Make a folder's entries (a rename into it) durable. Best effort: some
/// file systems refuse fsync on folders, and the data itself is already safe.
pub fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Replace `target` with `bytes` so that a reader (or a crash) sees either the
/// old complete file or the new complete file, never a mix: write a temp file
/// in the same folder (rename is only atomic within one file system), fsync
/// it, rename it over the target. The caller then fsyncs the folder
/// ([`sync_dir`]) once for all the files it wrote, so the renames themselves
/// survive a power cut.
pub fn write_synced(target: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(target)?;
    let result = (|| -> Result<()> {
        let mut file = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        file.sync_all()
            .with_context(|| format!("cannot fsync {}", tmp.display()))?;
        std::fs::rename(&tmp, target)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), target.display()))?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// From this many files in one round, [`write_all_synced`] makes their
/// bytes durable with one `syncfs` instead of one fsync each. Below it (an
/// article's event touches a handful of documents) per-file fsyncs are kept:
/// they wait for our files only, not for whatever else the file system has
/// buffered.
pub const SHARED_SYNC_FROM: usize = 64;

/// [`write_synced`] for many files at once, with the same guarantee for each
/// (a reader or a crash sees the old complete file or the new complete
/// file), at a fraction of the cost for a large round such as a cold build:
/// every temp file is written, then their bytes are made durable together
/// (one `syncfs` of the file system on Linux, an fsync each elsewhere or if
/// that fails), and only then are they renamed over their targets. The
/// caller fsyncs the folders afterwards, as for [`write_synced`].
pub fn write_all_synced(files: &[(std::path::PathBuf, &[u8])]) -> Result<()> {
    use rayon::prelude::*;
    if files.len() < SHARED_SYNC_FROM {
        return files
            .par_iter()
            .try_for_each(|(target, bytes)| write_synced(target, bytes));
    }
    // Handles are closed as soon as the bytes are written: a cold build
    // writes tens of thousands of files, far more than may be open at once.
    let written: Vec<Result<(std::path::PathBuf, u64)>> = files
        .par_iter()
        .map(|(target, bytes)| {
            let tmp = temp_path(target)?;
            let result = (|| -> Result<u64> {
                let mut file = std::fs::File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                file.write_all(bytes)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                Ok(device_of(&file))
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result.map(|device| (tmp, device))
        })
        .collect();
    let mut temps = Vec::with_capacity(written.len());
    let mut first_error = None;
    for w in written {
        match w {
            Ok(t) => temps.push(t),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let remove_temps = |temps: &[(std::path::PathBuf, u64)]| {
        for (tmp, _) in temps {
            let _ = std::fs::remove_file(tmp);
        }
    };
    if let Some(e) = first_error {
        remove_temps(&temps);
        return Err(e);
    }
    if let Err(e) = sync_together(&temps) {
        remove_temps(&temps);
        return Err(e);
    }
    for ((tmp, _), (target, _)) in temps.iter().zip(files) {
        if let Err(e) = std::fs::rename(tmp, target) {
            remove_temps(&temps);
            return Err(e).with_context(|| {
                format!("cannot rename {} to {}", tmp.display(), target.display())
            });
        }
    }
    Ok(())
}

/// The file system a file is on (0 where that cannot be told).
fn device_of(file: &std::fs::File) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().map(|m| m.dev()).unwrap_or(0)
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        0
    }
}

/// Make every temp file's bytes durable: one `syncfs` when every file is on
/// one file system (it flushes that file system whole), else an fsync each.
fn sync_together(temps: &[(std::path::PathBuf, u64)]) -> Result<()> {
    use rayon::prelude::*;
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::io::AsRawFd;
        let one_device = temps.windows(2).all(|w| w[0].1 == w[1].1);
        if one_device
            && let Some((first, _)) = temps.first()
            && let Ok(handle) = std::fs::File::open(first)
            // SAFETY: syncfs only reads the descriptor, which `handle` keeps open.
            && unsafe { libc::syncfs(handle.as_raw_fd()) } == 0
        {
            return Ok(());
        }
    }
    temps.par_iter().try_for_each(|(tmp, _)| {
        std::fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("cannot fsync {}", tmp.display()))
    })
}

/// A temp file's name beside `target`, unique in this process.
fn temp_path(target: &Path) -> Result<std::path::PathBuf> {
    let dir = target.parent().context("a publish target has no folder")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("feed");
    Ok(dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("sub/rss.xml");
        write_synced(&target, b"one").unwrap();
        write_synced(&target, b"two").unwrap();
        sync_dir(target.parent().unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("rss.xml")]);
    }

    #[test]
    fn a_large_round_is_written_whole_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let bodies: Vec<Vec<u8>> = (0..SHARED_SYNC_FROM * 2)
            .map(|i| format!("document {i}").into_bytes())
            .collect();
        let files: Vec<(std::path::PathBuf, &[u8])> = bodies
            .iter()
            .enumerate()
            .map(|(i, b)| {
                (
                    dir.path().join(format!("a/{}/f{i}.xml", i % 3)),
                    b.as_slice(),
                )
            })
            .collect();
        write_all_synced(&files).unwrap();
        write_all_synced(&files).unwrap();
        for (path, bytes) in &files {
            assert_eq!(&std::fs::read(path).unwrap(), bytes);
        }
        for sub in 0..3 {
            for entry in std::fs::read_dir(dir.path().join(format!("a/{sub}"))).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                assert!(!name.ends_with(".tmp"), "temp file {name} left behind");
            }
        }
    }

    #[test]
    fn a_large_round_that_cannot_be_written_leaves_the_old_files() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ok/rss.xml");
        write_synced(&good, b"old").unwrap();
        // A target whose folder is a file cannot be created: the round fails
        // and nothing in it is renamed into place.
        std::fs::write(dir.path().join("blocked"), b"a file").unwrap();
        let mut files: Vec<(std::path::PathBuf, &[u8])> = (0..SHARED_SYNC_FROM)
            .map(|i| (dir.path().join(format!("ok/n{i}.xml")), b"new".as_slice()))
            .collect();
        files.push((good.clone(), b"new"));
        files.push((dir.path().join("blocked/rss.xml"), b"new"));
        assert!(write_all_synced(&files).is_err());
        assert_eq!(std::fs::read(&good).unwrap(), b"old");
        let left: Vec<_> = std::fs::read_dir(dir.path().join("ok"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec!["rss.xml".to_string()]);
    }
}
