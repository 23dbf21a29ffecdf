//! CPU accounting shared by the client benchmarks: `getrusage` deltas, split into user
//! and kernel time, and the median the tables report.

use std::time::Duration;

/// CPU time from `getrusage`/`wait4`: user and system (kernel) parts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu {
    pub user: Duration,
    pub sys: Duration,
}

impl Cpu {
    pub fn total(&self) -> Duration {
        self.user + self.sys
    }

    /// The user and system times of a `rusage` (from `getrusage` or `wait4`).
    pub fn from_rusage(ru: &libc::rusage) -> Cpu {
        Cpu {
            user: timeval(ru.ru_utime),
            sys: timeval(ru.ru_stime),
        }
    }
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;

    fn sub(self, rhs: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(rhs.user),
            sys: self.sys.saturating_sub(rhs.sys),
        }
    }
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

fn timeval(tv: libc::timeval) -> Duration {
    Duration::from_secs(tv.tv_sec as u64) + Duration::from_micros(tv.tv_usec as u64)
}

/// User + system CPU of `who` (`RUSAGE_SELF`: the process; `RUSAGE_THREAD`: the caller).
pub fn cpu_of(who: libc::c_int) -> Cpu {
    // SAFETY: `rusage` is plain old data, so all-zero bytes are a valid value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable `rusage`; `who` is RUSAGE_SELF or RUSAGE_THREAD.
    let rc = unsafe { libc::getrusage(who, &mut ru) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    Cpu::from_rusage(&ru)
}

/// User + system CPU of this whole process so far.
pub fn self_cpu() -> Cpu {
    cpu_of(libc::RUSAGE_SELF)
}
