//! Files only this user may read: the data directory (0700) holds the store,
//! build logs, agent sockets and the compiled-code cache; the store's files
//! and the logs (0600) hold workspace output and, in SQLite, everything a
//! host knows. Modes are set when a file is made, not left to the umask, and
//! tightened on what an earlier release made more open.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of directories only this user may enter.
pub const DIR_MODE: u32 = 0o700;
/// The mode of files only this user may read and write.
pub const FILE_MODE: u32 = 0o600;

/// Creates directory `path` as 0700 (its missing parents as the umask
/// says), or tightens it to 0700 if it exists.
///
/// # Errors
///
/// When the directory cannot be made or its mode set.
pub fn dir(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => tighten(path, DIR_MODE),
        Err(e) => Err(e),
    }
}

/// Creates (truncating) file `path` as 0600 for writing.
///
/// # Errors
///
/// When the file cannot be created.
pub fn create(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create(true).truncate(true).mode(FILE_MODE).open(path)?;
    // An existing file keeps its mode through O_CREAT: set it.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}

/// Creates file `path` as 0600 if it is missing, leaving its content, and
/// tightens it to 0600 if it exists.
///
/// # Errors
///
/// When the file cannot be created or its mode set.
pub fn touch(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().write(true).create(true).truncate(false).mode(FILE_MODE).open(path)?;
    file.set_permissions(Permissions::from_mode(FILE_MODE))
}

/// Removes group and other permissions from `path`, if it exists, keeping
/// the owner's and never widening `mode`.
///
/// # Errors
///
/// When the mode cannot be set.
pub fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => Ok(()),
        Ok(meta) if meta.permissions().mode() & 0o7777 & !mode != 0 => std::fs::set_permissions(path, Permissions::from_mode(meta.permissions().mode() & mode)),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn directories_and_files_are_made_private_and_open_ones_are_tightened() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("a").join("data");
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        std::fs::set_permissions(&data, Permissions::from_mode(0o755)).unwrap();
        dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700, "an existing directory is tightened");

        let log = data.join("build.log");
        std::fs::write(&log, "old").unwrap();
        std::fs::set_permissions(&log, Permissions::from_mode(0o644)).unwrap();
        create(&log).unwrap();
        assert_eq!((mode(&log), std::fs::read_to_string(&log).unwrap().as_str()), (0o600, ""));

        let db = data.join("toolshed.db");
        std::fs::write(&db, "kept").unwrap();
        std::fs::set_permissions(&db, Permissions::from_mode(0o664)).unwrap();
        touch(&db).unwrap();
        assert_eq!((mode(&db), std::fs::read_to_string(&db).unwrap().as_str()), (0o600, "kept"));
        tighten(&data.join("missing"), FILE_MODE).unwrap();
    }
}
