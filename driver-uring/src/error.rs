//! Why an io_uring driver could not be built.

use std::io;

/// The advice every "io_uring is not usable here" error ends with.
const USE_MIO: &str = "run on the portable mio driver instead (`--driver mio`, `monocoque_mio::MioDriver`)";

/// Why [`UringDriver::new`](crate::UringDriver::new) failed.
///
/// The first two variants mean io_uring cannot be used on this machine at all; their
/// message names the mio driver as the way out. A program that wants to run anywhere
/// matches on [`is_unavailable`](Self::is_unavailable) and falls back.
#[derive(Debug, thiserror::Error)]
pub enum UringError {
    /// The kernel refused to create a ring: too old for io_uring (`ENOSYS`), or a
    /// seccomp filter (containers, sandboxes) or `kernel.io_uring_disabled` forbids it
    /// (`EPERM`, `EACCES`).
    #[error("io_uring is not available here ({source}): the kernel lacks it, or a seccomp filter or the kernel.io_uring_disabled sysctl forbids it; {USE_MIO}")]
    Unavailable {
        /// What `io_uring_setup` answered.
        #[source]
        source: io::Error,
    },
    /// The kernel has io_uring, but not a feature this driver is built on.
    #[error("this kernel's io_uring lacks {feature} (needs {needs}); {USE_MIO}")]
    Unsupported {
        /// The missing operation or feature.
        feature: &'static str,
        /// The first kernel release that has it.
        needs: &'static str,
    },
    /// A [`UringConfig`](crate::UringConfig) value is out of range.
    #[error("invalid io_uring driver configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What it must be.
        reason: &'static str,
    },
    /// Setting up the ring failed for another reason (out of memory, locked-memory
    /// limit, file descriptor limit).
    #[error("setting up io_uring failed while {step}: {source}")]
    Setup {
        /// What the driver was doing.
        step: &'static str,
        /// The error the kernel returned.
        #[source]
        source: io::Error,
    },
}

impl UringError {
    /// Whether io_uring cannot be used on this machine at all (as opposed to a bad
    /// configuration or a transient resource shortage): the caller should use the mio
    /// driver instead.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Unsupported { .. })
    }

    /// Classifies an `io_uring_setup` failure.
    pub(crate) fn from_setup(source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENOSYS | libc::EPERM | libc::EACCES) => Self::Unavailable { source },
            _ => Self::Setup {
                step: "creating the ring",
                source,
            },
        }
    }
}

impl From<UringError> for io::Error {
    fn from(err: UringError) -> Self {
        let kind = match &err {
            UringError::Unavailable { .. } | UringError::Unsupported { .. } => io::ErrorKind::Unsupported,
            UringError::InvalidConfig { .. } => io::ErrorKind::InvalidInput,
            UringError::Setup { source, .. } => source.kind(),
        };
        io::Error::new(kind, err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unavailable_names_the_mio_driver() {
        let err = UringError::from_setup(io::Error::from_raw_os_error(libc::EPERM));
        assert!(err.is_unavailable());
        let msg = err.to_string();
        assert!(msg.contains("--driver mio"), "{msg}");
        assert!(msg.contains("monocoque_mio::MioDriver"), "{msg}");
        let io: io::Error = err.into();
        assert_eq!(io.kind(), io::ErrorKind::Unsupported);
        assert!(io.to_string().contains("--driver mio"));
    }

    #[test]
    fn enosys_is_unavailable_and_enomem_is_not() {
        assert!(UringError::from_setup(io::Error::from_raw_os_error(libc::ENOSYS)).is_unavailable());
        let enomem = UringError::from_setup(io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(!enomem.is_unavailable());
        assert_eq!(io::Error::from(enomem).kind(), io::ErrorKind::OutOfMemory);
    }

    #[test]
    fn unsupported_feature_names_kernel_and_mio() {
        let msg = UringError::Unsupported {
            feature: "provided-buffer rings",
            needs: "Linux 5.19",
        }
        .to_string();
        assert!(msg.contains("provided-buffer rings") && msg.contains("Linux 5.19") && msg.contains("--driver mio"));
    }
}
