//! Output files that cannot destroy data: [`check_output`] refuses an output path that is one of
//! the command's inputs or any file of the store (compared by resolved path and by inode, so a
//! symlink, `./x` or a hard link is caught too), and [`AtomicFile`] writes beside the target and
//! renames into place only once complete, so a failed or interrupted command leaves the old file
//! as it was.

use crate::engine::error::{Error, Result};
use crate::engine::store::StoreLocation;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The files SQLite keeps beside a database.
const SQLITE_COMPANIONS: [&str; 3] = ["-wal", "-shm", "-journal"];

/// `path` made absolute with its directory resolved (symlinks followed); the file itself need
/// not exist.
fn resolved(path: &Path) -> Option<PathBuf> {
    if let Ok(full) = path.canonicalize() {
        return Some(full);
    }
    let name = path.file_name()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Some(parent.canonicalize().ok()?.join(name))
}

#[cfg(unix)]
fn same_inode(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_inode(_: &Path, _: &Path) -> bool {
    false
}

fn same_file(a: &Path, b: &Path) -> bool {
    same_inode(a, b) || matches!((resolved(a), resolved(b)), (Some(x), Some(y)) if x == y)
}

/// The files a store consists of (for SQLite: the database and its WAL, shared-memory and
/// journal files).
pub fn store_files(store: &StoreLocation) -> Vec<PathBuf> {
    match store {
        StoreLocation::Sqlite(path) => {
            let mut files = vec![path.clone()];
            for suffix in SQLITE_COMPANIONS {
                let mut name = path.as_os_str().to_owned();
                name.push(suffix);
                files.push(PathBuf::from(name));
            }
            files
        }
        StoreLocation::MongoDb(_) => Vec::new(),
    }
}

/// Refuses (as a usage error, before anything is written) an output that is one of `inputs` or
/// a file of `store`. `what` names the output for the message (`--errors`, `the export file`).
pub fn check_output(what: &str, output: &Path, inputs: &[&Path], store: &StoreLocation) -> Result<()> {
    if let Some(input) = inputs.iter().find(|input| same_file(output, input)) {
        return Err(Error::Usage(format!(
            "{what} {} is the file being read ({}); writing it would destroy it. Choose another path",
            output.display(),
            input.display()
        )));
    }
    if let Some(file) = store_files(store).iter().find(|file| same_file(output, file)) {
        return Err(Error::Usage(format!(
            "{what} {} is a file of the store ({}); writing it would destroy the store. Choose another path",
            output.display(),
            file.display()
        )));
    }
    Ok(())
}

/// A file written under a temporary name beside its target and renamed over it by
/// [`AtomicFile::commit`]; dropped without a commit, it removes the temporary file and the target
/// is untouched.
pub struct AtomicFile {
    target: PathBuf,
    temp: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub fn create(target: &Path) -> Result<AtomicFile> {
        let io = |e: io::Error| Error::Output { path: target.display().to_string(), source: e };
        let name = target
            .file_name()
            .ok_or_else(|| io(io::Error::new(io::ErrorKind::InvalidInput, "the path names a directory, not a file")))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".crm-{}-{:08x}.tmp", std::process::id(), rand::random::<u32>()));
        let temp = target.with_file_name(temp_name);
        let file = File::create(&temp).map_err(io)?;
        Ok(AtomicFile { target: target.to_path_buf(), temp, writer: Some(BufWriter::new(file)) })
    }

    /// Flushes, syncs and renames the file into place; on failure the temporary file is
    /// removed and the target left as it was.
    pub fn commit(mut self) -> Result<()> {
        let io = |e: io::Error| Error::Output { path: self.target.display().to_string(), source: e };
        let writer = self.writer.take().ok_or_else(|| io(io::Error::other("already committed")))?;
        let done = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|file| file.sync_all())
            .and_then(|()| std::fs::rename(&self.temp, &self.target));
        if done.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        done.map_err(io)
    }

    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_that_are_inputs_or_store_files_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.csv");
        std::fs::write(&input, "email\n").expect("write");
        let store = StoreLocation::Sqlite(dir.path().join("crm.db"));
        std::fs::write(dir.path().join("crm.db"), "").expect("write");
        let dotted = dir.path().join(".").join("in.csv");
        assert!(check_output("--errors", &dotted, &[&input], &store).is_err(), "same path, spelled differently");
        let link = dir.path().join("link.csv");
        std::fs::hard_link(&input, &link).expect("link");
        assert!(check_output("--errors", &link, &[&input], &store).is_err(), "same inode");
        assert!(check_output("--errors", &dir.path().join("crm.db-wal"), &[&input], &store).is_err());
        assert!(check_output("--errors", &dir.path().join("crm.db"), &[], &store).is_err());
        assert!(check_output("--errors", &dir.path().join("out.csv"), &[&input], &store).is_ok());
    }

    #[test]
    fn an_uncommitted_file_leaves_the_target_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("out.csv");
        std::fs::write(&target, "old").expect("write");
        let mut f = AtomicFile::create(&target).expect("create");
        f.write_all(b"new, half written").expect("write");
        drop(f);
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "old");
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary file left behind");
        let mut f = AtomicFile::create(&target).expect("create");
        f.write_all(b"new").expect("write");
        f.commit().expect("commit");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "new");
    }

    #[test]
    fn a_failed_commit_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("adir");
        std::fs::create_dir(&target).expect("mkdir");
        let mut f = AtomicFile::create(&target).expect("create");
        f.write_all(b"new").expect("write");
        assert!(f.commit().is_err(), "a file cannot replace a directory");
        assert!(target.is_dir());
        assert_eq!(std::fs::read_dir(dir.path()).expect("ls").count(), 1, "no temporary file left behind");
    }
}
