//! What the client benchmarks print about the machine they ran on, so a table carries
//! how busy the machine was (this 2-vCPU machine is shared and noisy).

/// The 1-minute load average.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The line under a table's title: the peer's version, CPUs, load, repetitions.
pub fn print_conditions(peer_version: &str, reps: usize, quick: bool) {
    println!(
        "{peer_version}; {} CPU(s), load average {} at start; {reps} repetition(s), interleaved; medians{}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average(),
        if quick {
            "; --quick (short runs, numbers are rough)"
        } else {
            ""
        }
    );
}
