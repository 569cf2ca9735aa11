//! The files a config load read, each with a digest of the bytes it read, so that a
//! watcher can tell when any of them changed: the config itself, and the files it names
//! whose content it holds (`jwks_file`, `keys_file`, an introspection `ca_file`).

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::sha256;

/// Every file one load read, in reading order; `None` for a file it could not read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Sources(Vec<(PathBuf, Option<[u8; 32]>)>);

impl Sources {
    /// Reads `path`, remembering what was read (or that it could not be).
    pub(crate) fn read(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        let bytes = std::fs::read(path);
        self.0
            .push((path.to_path_buf(), bytes.as_deref().ok().map(sha256)));
        bytes
    }

    /// How many reads are remembered.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The digests of the reads from the `from`-th on (None: could not be read).
    pub(crate) fn digests_from(&self, from: usize) -> impl Iterator<Item = &Option<[u8; 32]>> {
        self.0.iter().skip(from).map(|(_, d)| d)
    }

    /// [`Sources::read`] as UTF-8 text.
    pub(crate) fn read_to_string(&mut self, path: &Path) -> io::Result<String> {
        String::from_utf8(self.read(path)?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
    }

    /// The first file whose content is no longer what the load read: changed, removed,
    /// or readable again.
    pub fn changed(&self) -> Option<&Path> {
        self.0
            .iter()
            .find(|(path, seen)| std::fs::read(path).ok().map(|b| sha256(&b)) != *seen)
            .map(|(path, _)| path.as_path())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_a_removal_and_a_return_are_each_seen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let gone = dir.path().join("gone");
        std::fs::write(&a, "one").expect("write");
        let mut s = Sources::default();
        assert_eq!(s.read_to_string(&a).expect("read"), "one");
        assert!(s.read(&gone).is_err());
        assert_eq!(s.changed(), None, "nothing changed yet");

        std::fs::write(&a, "two").expect("write");
        assert_eq!(s.changed(), Some(a.as_path()));
        std::fs::write(&a, "one").expect("write");
        assert_eq!(s.changed(), None, "same bytes again: no change");

        std::fs::write(&gone, "back").expect("write");
        assert_eq!(
            s.changed(),
            Some(gone.as_path()),
            "an unreadable file appeared"
        );
        std::fs::remove_file(&gone).expect("remove");
        std::fs::remove_file(&a).expect("remove");
        assert_eq!(s.changed(), Some(a.as_path()), "a read file was removed");
    }

    #[test]
    fn text_that_is_not_utf8_is_an_error_but_is_still_tracked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("bin");
        std::fs::write(&f, [0xff, 0xfe]).expect("write");
        let mut s = Sources::default();
        let err = s.read_to_string(&f).expect_err("not text");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(s.changed(), None);
    }
}
