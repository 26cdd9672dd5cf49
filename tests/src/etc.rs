//! Files a test puts into /etc (PAM services, sudoers snippets): written
//! with a unique name, removed on Drop, also when the test panics.

use std::path::{Path, PathBuf};

pub struct EtcFile {
    path: PathBuf,
}

impl EtcFile {
    /// Writes `path` (which must not exist yet) with `mode`.
    pub fn create(path: impl AsRef<Path>, contents: &str, mode: u32) -> EtcFile {
        let path = path.as_ref().to_path_buf();
        assert!(
            path.starts_with("/etc/"),
            "EtcFile is for /etc only: {}",
            path.display()
        );
        assert!(
            !path.exists(),
            "{} exists already; refusing to overwrite it",
            path.display()
        );
        // Write under a name the tools ignore, then move into place, so that
        // sudo/PAM never see a half-written file.
        let tmp = path.with_file_name(format!(
            ".{}.tmp~",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("tft")
        ));
        crate::write_file(&tmp, contents, mode);
        let guard = EtcFile { path: tmp.clone() };
        std::fs::rename(&tmp, &path)
            .unwrap_or_else(|e| panic!("rename to {}: {e}", path.display()));
        drop(guard);
        EtcFile { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for EtcFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
