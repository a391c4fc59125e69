//! The articles folder as a source of files: which files count as articles,
//! how they are listed and read. Shared by `build`, start-up reconciliation
//! and the watcher so all three agree on what an article file is.

use crate::article::Format;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// What the file system said about a file when it was read. If size,
/// modification time and inode are unchanged the file is not read again; if
/// they differ but the content hash is the same it is not parsed again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    pub size: u64,
    pub mtime_ns: i64,
    /// A file replaced by another of the same size and mtime (a restore, a
    /// sync tool) is a different inode, and is read again.
    pub inode: u64,
    pub hash: String,
}

/// A candidate article file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SourceFile {
    /// Path relative to the articles folder, `/`-separated: the catalog key.
    pub rel: String,
    pub abs: PathBuf,
}

/// Is this a file name feedwire should never read? Hidden files, editor swap
/// and backup files, sync-tool temp files, and vim's `4913` write probe.
pub fn is_ignored_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name == "4913"
        || [
            ".swp",
            ".swx",
            ".swo",
            ".tmp",
            ".temp",
            ".bak",
            ".bck",
            ".part",
            ".crdownload",
            ".partial",
            ".kate-swp",
        ]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

/// Is this path (under `root`) one feedwire reads as an article?
pub fn is_article_path(root: &Path, path: &Path) -> bool {
    let Ok(rel) = path.strip_prefix(root) else {
        return false;
    };
    let mut parts = rel.components().peekable();
    while let Some(part) = parts.next() {
        let name = part.as_os_str().to_string_lossy();
        if is_ignored_name(&name) {
            return false;
        }
        if parts.peek().is_none() {
            return Format::from_file_name(&name).is_some();
        }
    }
    false
}

/// The catalog key of a path under `root`.
pub fn relative_key(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Every article file under `root`, sorted by key. Symbolic links are
/// followed only when they resolve inside `root`.
pub fn list(root: &Path) -> Result<Vec<SourceFile>> {
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("the articles folder {} is not readable", root.display()))?;
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if dir != root => {
                tracing::warn!(folder = %dir.display(), error = %e, "cannot list folder; skipped");
                continue;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_ignored_name(&name) {
                continue;
            }
            let Ok(ft) = entry.file_type() else { continue };
            let (is_dir, is_file) = if ft.is_symlink() {
                match path.canonicalize() {
                    Ok(target) if target.starts_with(&canonical_root) => (
                        target.is_dir() && !canonical_root.starts_with(&target),
                        target.is_file(),
                    ),
                    _ => {
                        tracing::debug!(file = %path.display(), "symbolic link leads outside the articles folder; not followed");
                        continue;
                    }
                }
            } else {
                (ft.is_dir(), ft.is_file())
            };
            if is_dir {
                stack.push(path);
            } else if is_file
                && Format::from_file_name(&name).is_some()
                && let Some(rel) = relative_key(root, &path)
            {
                out.push(SourceFile { rel, abs: path });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where a path really leads, if that is a file inside `canonical_root`.
///
/// Checked at read time, on the canonical path, whatever route (an event,
/// start-up, a rescan) led to the file: a link to a file or folder outside
/// the articles folder, made before start or while running, never gets a
/// file read through it.
pub fn resolve_inside(canonical_root: &Path, path: &Path) -> Option<PathBuf> {
    let real = path.canonicalize().ok()?;
    real.starts_with(canonical_root).then_some(real)
}

/// What [`stat`] tells without reading the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

impl Stat {
    /// Does a catalog stamp describe this same, unchanged file?
    pub fn matches(&self, stamp: &FileStamp) -> bool {
        self.size == stamp.size && self.mtime_ns == stamp.mtime_ns && self.inode == stamp.inode
    }
}

/// Size, modification time and inode of one file, without reading it.
fn stat_file(path: &Path) -> std::io::Result<Stat> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    Ok(Stat {
        size: meta.len(),
        mtime_ns,
        inode: meta.ino(),
    })
}

/// A sidecar is small: an embargo, a status, a note. Anything larger is
/// read only this far (and then fails to parse, with a clear reason).
const MAX_SIDECAR_BYTES: u64 = 64 * 1024;

/// The sidecar beside an article file (`x.txt` → `x.meta.toml`): the
/// embargo, status and correction a wire file has no place for.
pub fn sidecar_path(article: &Path) -> PathBuf {
    let name = article
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    article.with_file_name(crate::ingest::sidecar_name(&name))
}

/// The article files a sidecar belongs to (`x.meta.toml` → `x.txt`,
/// `x.md`, `x.markdown`), or `None` when `name` is not a sidecar's.
pub fn articles_of_sidecar(name: &str) -> Option<Vec<String>> {
    let stem = name.strip_suffix(".meta.toml").filter(|s| !s.is_empty())?;
    Some(
        ["txt", "md", "markdown"]
            .iter()
            .map(|ext| format!("{stem}.{ext}"))
            .collect(),
    )
}

/// What the catalog's stamp of an article covers: the file, with its sidecar
/// folded in, so a sidecar that appears, changes or goes makes the article
/// be read again (its size and mtime move the stamp).
pub fn stat(path: &Path) -> std::io::Result<Stat> {
    let mut s = stat_file(path)?;
    if let Ok(side) = stat_file(&sidecar_path(path)) {
        s.size += side.size + 1;
        s.mtime_ns = s.mtime_ns.max(side.mtime_ns) ^ 1;
    }
    Ok(s)
}

/// An article file as read: its bytes, its sidecar's if it has one, and the
/// stamp of both.
pub struct ArticleRead {
    pub stamp: FileStamp,
    pub bytes: Vec<u8>,
    pub sidecar: Option<Vec<u8>>,
}

impl ArticleRead {
    /// The article file's own size as the stamp saw it (the stamp's size
    /// counts the sidecar too).
    pub fn file_size(&self) -> u64 {
        let side = self.sidecar.as_ref().map_or(0, |s| s.len() as u64 + 1);
        self.stamp.size.saturating_sub(side)
    }
}

/// Read an article file (and its sidecar) and stamp them. The stamp's size
/// and mtime are taken before the read; [`is_settled`] compares them
/// afterwards to catch files still being written.
pub fn read(path: &Path, max_bytes: u64) -> std::io::Result<ArticleRead> {
    let Stat {
        size,
        mtime_ns,
        inode,
    } = stat(path)?;
    let bytes = read_capped(path, max_bytes)?;
    // A sidecar must be a plain file: a link could lead anywhere, and its
    // correction note would be published.
    let side = sidecar_path(path);
    let sidecar = match std::fs::symlink_metadata(&side) {
        Ok(meta) if meta.file_type().is_file() => Some(read_capped(&side, MAX_SIDECAR_BYTES)?),
        Ok(_) => {
            tracing::warn!(file = %side.display(), "a sidecar must be a plain file, not a link; ignored");
            None
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let mut hasher = blake3::Hasher::new();
    hasher.update(&bytes);
    if let Some(side) = &sidecar {
        hasher.update(b"\0sidecar\0");
        hasher.update(side);
    }
    let hash = hasher.finalize().to_hex()[..32].to_string();
    Ok(ArticleRead {
        stamp: FileStamp {
            size,
            mtime_ns,
            inode,
            hash,
        },
        bytes,
        sidecar,
    })
}

/// Read at most `max_bytes + 1` bytes: a huge file is not read into memory
/// only to be rejected; the caller sees it is too large.
fn read_capped(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(max_bytes + 1)
        .read_to_end(&mut buf)?;
    Ok(buf)
}

/// Has the file (with its sidecar) stayed as it was when `stamp` was taken?
pub fn is_settled(path: &Path, stamp: &FileStamp) -> bool {
    matches!(stat(path), Ok(s) if s.matches(stamp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_editor_and_sync_leftovers() {
        for name in [
            ".a.txt.swp",
            "a.txt~",
            "4913",
            ".a.txt.XyZ123",
            "a.tmp",
            "#a.txt#",
            ".hidden.txt",
            "a.txt.part",
        ] {
            assert!(is_ignored_name(name), "{name} should be ignored");
        }
        for name in ["000_ee2825b76e43200a.txt", "tin.md"] {
            assert!(!is_ignored_name(name), "{name} should be read");
        }
    }

    #[test]
    fn lists_articles_sorted_and_skips_links_outside() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("articles");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("b.txt"), "x").unwrap();
        std::fs::write(root.join("sub/a.md"), "x").unwrap();
        std::fs::write(root.join("notes.pdf"), "x").unwrap();
        std::fs::write(root.join(".b.txt.swp"), "x").unwrap();
        std::fs::write(outside.join("secret.txt"), "x").unwrap();
        std::os::unix::fs::symlink(outside.join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("b.txt"), root.join("alias.txt")).unwrap();
        let keys: Vec<String> = list(&root).unwrap().into_iter().map(|f| f.rel).collect();
        assert_eq!(keys, vec!["alias.txt", "b.txt", "sub/a.md"]);
    }
}
