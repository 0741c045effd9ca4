//! Where the master key comes from: `TENANCY_MASTER_KEY`, `--master-key-file`, or, for
//! the embedded SQLite default only, a file the first start creates in the data directory.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Read as _, Write as _},
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _},
    path::{Path, PathBuf},
};

use rand::RngCore as _;
use zeroize::Zeroizing;

use super::master_key::MasterKey;

/// The environment variable that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "TENANCY_MASTER_KEY";
/// The flag naming a file that holds the master key (base64 of 32 bytes).
pub const MASTER_KEY_FILE_FLAG: &str = "--master-key-file";
/// The file created under the data directory of the embedded SQLite default.
pub const GENERATED_FILE_NAME: &str = "master.key";

impl MasterKey {
    /// Finds the master key in the order of [`MasterKeySources`]: the variable, the file,
    /// then (embedded default only) the generated file, created on first start.
    ///
    /// Errors: both the variable and the file are given; a source's text is not the
    /// base64 of 32 bytes (the error names the variable or the file); none is given
    /// and nothing may be generated; the generated file is readable by group or others;
    /// the file cannot be read or created.
    pub fn load(sources: &MasterKeySources<'_>) -> Result<(Self, MasterKeyOrigin), MasterKeyError> {
        match (sources.env, sources.file) {
            (Some(_), Some(_)) => Err(MasterKeyError::Ambiguous),
            (Some(text), None) => Ok((
                Self::from_base64(text, MASTER_KEY_ENV)?,
                MasterKeyOrigin::Environment,
            )),
            (None, Some(path)) => {
                let origin = format!("{MASTER_KEY_FILE_FLAG} {}", path.display());
                let text = read_key_file(path).map_err(|e| MasterKeyError::io(path, e))?;
                Ok((
                    Self::from_base64(&text, &origin)?,
                    MasterKeyOrigin::File(path.to_path_buf()),
                ))
            }
            (None, None) => match sources.generate_in {
                Some(dir) => load_or_create(dir),
                None => Err(MasterKeyError::Missing),
            },
        }
    }
}

/// Where [`MasterKey::load`] looks, in this order; the caller reads the environment and
/// the flags (so tests need not touch the process's environment).
#[derive(Debug, Clone, Copy, Default)]
pub struct MasterKeySources<'a> {
    /// The value of [`MASTER_KEY_ENV`] when it is set (even to an empty string: that is
    /// refused, never taken as unset).
    pub env: Option<&'a str>,
    /// [`MASTER_KEY_FILE_FLAG`]: a file holding the base64 text (its mode is the
    /// operator's business: orchestrators mount secrets 0644 in a private tmpfs).
    pub file: Option<&'a Path>,
    /// Only for the embedded SQLite default: the data directory where
    /// [`GENERATED_FILE_NAME`] is created (mode 0600) on first start. `None` elsewhere,
    /// so a PostgreSQL deployment without a key fails instead of inventing one per host.
    pub generate_in: Option<&'a Path>,
}

/// Where the loaded key came from: the caller logs it (a path, never the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterKeyOrigin {
    Environment,
    File(PathBuf),
    /// `created`: this start made the file (none existed).
    Generated {
        path: PathBuf,
        created: bool,
    },
}

/// Why no master key could be loaded; every message names the variable, flag or file.
#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("both {MASTER_KEY_ENV} and {MASTER_KEY_FILE_FLAG} are set: set only one")]
    Ambiguous,
    #[error(
        "no master key: set {MASTER_KEY_ENV} or {MASTER_KEY_FILE_FLAG} (the base64 of 32 random \
         bytes, e.g. `openssl rand -base64 32`); signing keys and TOTP secrets are stored \
         encrypted under it"
    )]
    Missing,
    #[error(
        "{origin} does not hold a master key: {problem}; it must be the base64 of 32 random \
         bytes (e.g. `openssl rand -base64 32`)"
    )]
    Malformed { origin: String, problem: String },
    #[error(
        "the master key file {path} is readable by group or others (mode {mode:o}): the key \
         may have leaked; if not, run `chmod 600 {path}`"
    )]
    Unprotected { path: PathBuf, mode: u32 },
    #[error("the master key file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

impl MasterKeyError {
    fn io(path: &Path, source: io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

fn read_key_file(path: &Path) -> io::Result<Zeroizing<String>> {
    read_text(&mut File::open(path)?)
}

fn read_text(file: &mut File) -> io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::with_capacity(64));
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Reads the generated file, or creates it if there is none. Creation writes a private
/// temporary file and hard-links it into place, which fails if the name exists: of
/// several processes starting together exactly one creates the file, and every other
/// reads that one, never a half-written file.
fn load_or_create(dir: &Path) -> Result<(MasterKey, MasterKeyOrigin), MasterKeyError> {
    let path = dir.join(GENERATED_FILE_NAME);
    let origin = |created| MasterKeyOrigin::Generated {
        path: path.clone(),
        created,
    };
    match read_generated(&path) {
        Ok(key) => return Ok((key, origin(false))),
        Err(GeneratedRead::Io(e)) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into_error(&path)),
    }
    // Private, as the store makes the SQLite file's directory (this may come first).
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| MasterKeyError::io(dir, e))?;
    let key = MasterKey::generate();
    let mut suffix = [0; 8];
    rand::rngs::OsRng.fill_bytes(&mut suffix);
    let temporary = dir.join(format!(
        ".{GENERATED_FILE_NAME}.{}.tmp",
        hex::encode(suffix)
    ));
    let written = write_private(&temporary, &key);
    let linked = written.and_then(|()| fs::hard_link(&temporary, &path));
    // Best effort: the temporary name is unique and holds nothing once linked or failed.
    let _ = fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            // The new name survives a crash only once the directory is synced.
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| MasterKeyError::io(dir, e))?;
            tracing::info!(path = %path.display(), "created a new master key file");
            Ok((key, origin(true)))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let key = read_generated(&path).map_err(|e| e.into_error(&path))?;
            Ok((key, origin(false)))
        }
        Err(e) => Err(MasterKeyError::io(&temporary, e)),
    }
}

fn write_private(path: &Path, key: &MasterKey) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    let mut text = key.to_base64();
    text.push('\n');
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

enum GeneratedRead {
    Io(io::Error),
    Unprotected(u32),
    Malformed(MasterKeyError),
}

impl GeneratedRead {
    fn into_error(self, path: &Path) -> MasterKeyError {
        match self {
            Self::Io(e) => MasterKeyError::io(path, e),
            Self::Unprotected(mode) => MasterKeyError::Unprotected {
                path: path.to_path_buf(),
                mode,
            },
            Self::Malformed(e) => e,
        }
    }
}

/// The service made this file with mode 0600, so any group or other bit means someone
/// changed or copied it: refused, like ssh refuses an unprotected private key, rather
/// than trusting a key that may have leaked.
fn read_generated(path: &Path) -> Result<MasterKey, GeneratedRead> {
    let mut file = File::open(path).map_err(GeneratedRead::Io)?;
    let mode = file
        .metadata()
        .map_err(GeneratedRead::Io)?
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        return Err(GeneratedRead::Unprotected(mode));
    }
    let text = read_text(&mut file).map_err(GeneratedRead::Io)?;
    MasterKey::from_base64(&text, &format!("the master key file {}", path.display()))
        .map_err(GeneratedRead::Malformed)
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::STANDARD};

    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes([byte; 32])
    }

    #[test]
    fn the_variable_holds_the_base64_of_32_bytes() {
        let text = key(9).to_base64();
        let sources = MasterKeySources {
            env: Some(&text),
            ..Default::default()
        };
        let (loaded, origin) = MasterKey::load(&sources).unwrap();
        assert_eq!(loaded.fingerprint(), key(9).fingerprint());
        assert_eq!(origin, MasterKeyOrigin::Environment);
    }

    #[test]
    fn a_variable_that_is_not_a_key_is_refused_naming_the_variable() {
        let short = STANDARD.encode([1; 16]);
        for text in ["", "not base64!", short.as_str()] {
            let sources = MasterKeySources {
                env: Some(text),
                ..Default::default()
            };
            let error = MasterKey::load(&sources).unwrap_err();
            assert!(
                matches!(error, MasterKeyError::Malformed { .. }),
                "{error:?}"
            );
            assert!(error.to_string().contains(MASTER_KEY_ENV), "{error}");
        }
        let error = MasterKey::from_base64(&short, MASTER_KEY_ENV).unwrap_err();
        assert!(error.to_string().contains("16 bytes"), "{error}");
    }

    #[test]
    fn a_key_file_holds_the_base64_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        fs::write(&path, format!("{}\n", key(3).to_base64().as_str())).unwrap();
        let sources = MasterKeySources {
            file: Some(&path),
            ..Default::default()
        };
        let (loaded, origin) = MasterKey::load(&sources).unwrap();
        assert_eq!(loaded.fingerprint(), key(3).fingerprint());
        assert_eq!(origin, MasterKeyOrigin::File(path.clone()));

        fs::write(&path, STANDARD.encode([1; 33])).unwrap();
        let error = MasterKey::load(&sources).unwrap_err();
        assert!(error.to_string().contains(MASTER_KEY_FILE_FLAG), "{error}");
        assert!(
            error.to_string().contains(&path.display().to_string()),
            "{error}"
        );
    }

    #[test]
    fn the_variable_and_the_file_together_are_refused() {
        let text = key(3).to_base64();
        let sources = MasterKeySources {
            env: Some(&text),
            file: Some(Path::new("/nonexistent")),
            generate_in: None,
        };
        assert!(matches!(
            MasterKey::load(&sources),
            Err(MasterKeyError::Ambiguous)
        ));
    }

    #[test]
    fn without_a_source_nothing_is_invented_outside_the_embedded_default() {
        assert!(matches!(
            MasterKey::load(&MasterKeySources::default()),
            Err(MasterKeyError::Missing)
        ));
    }

    #[test]
    fn the_embedded_default_creates_a_private_file_once_and_reads_it_after() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let sources = MasterKeySources {
            generate_in: Some(&data),
            ..Default::default()
        };
        let (first, origin) = MasterKey::load(&sources).unwrap();
        let path = data.join(GENERATED_FILE_NAME);
        assert_eq!(
            origin,
            MasterKeyOrigin::Generated {
                path: path.clone(),
                created: true
            }
        );
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let (again, origin) = MasterKey::load(&sources).unwrap();
        assert_eq!(again.fingerprint(), first.fingerprint());
        assert_eq!(
            origin,
            MasterKeyOrigin::Generated {
                path,
                created: false
            }
        );
        let leftovers = fs::read_dir(&data).unwrap().count();
        assert_eq!(
            leftovers, 1,
            "only {GENERATED_FILE_NAME} stays in the directory"
        );
    }

    #[test]
    fn processes_starting_together_agree_on_one_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_path_buf();
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let data = data.clone();
                std::thread::spawn(move || {
                    let sources = MasterKeySources {
                        generate_in: Some(&data),
                        ..Default::default()
                    };
                    let (key, origin) = MasterKey::load(&sources).unwrap();
                    let created =
                        matches!(origin, MasterKeyOrigin::Generated { created: true, .. });
                    (key.fingerprint(), created)
                })
            })
            .collect();
        let results: Vec<_> = starts.into_iter().map(|s| s.join().unwrap()).collect();
        assert!(
            results.iter().all(|(f, _)| *f == results[0].0),
            "{results:?}"
        );
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    }

    #[test]
    fn a_generated_file_readable_by_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sources = MasterKeySources {
            generate_in: Some(dir.path()),
            ..Default::default()
        };
        MasterKey::load(&sources).unwrap();
        let path = dir.path().join(GENERATED_FILE_NAME);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let error = MasterKey::load(&sources).unwrap_err();
        assert!(
            matches!(error, MasterKeyError::Unprotected { mode: 0o640, .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
}
