use clap::Parser;

fn main() -> std::process::ExitCode {
    monocoque::cli::run(monocoque::cli::Cli::parse())
}
