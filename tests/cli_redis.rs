//! `monocoque redis` against a real redis-server, on both drivers, compared with
//! `redis-cli` byte for byte (both run with stdout not a terminal).

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{free_port, require_binary, RedisServer, TempDir};

const DRIVERS: [&str; 2] = ["uring", "mio"];

fn url(server: &RedisServer) -> String {
    format!("redis://{}", server.addr)
}

/// Runs `monocoque <args>` with `stdin` as standard input.
fn monocoque_with_stdin(args: &[&str], stdin: Stdio) -> Output {
    Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(args)
        .stdin(stdin)
        .output()
        .expect("run the monocoque binary")
}

fn monocoque(args: &[&str]) -> Output {
    monocoque_with_stdin(args, Stdio::null())
}

/// `monocoque redis --url <server> --driver <driver> <extra...>`.
fn ours(server: &RedisServer, driver: &str, extra: &[&str]) -> Output {
    let url = url(server);
    let mut args = vec!["redis", "--url", &url, "--driver", driver];
    args.extend_from_slice(extra);
    monocoque(&args)
}

fn redis_cli_with_stdin(server: &RedisServer, args: &[&str], stdin: Stdio) -> Output {
    Command::new(require_binary("redis-cli", "redis-tools"))
        .args(["-h", "127.0.0.1", "-p", &server.addr.port().to_string()])
        .args(args)
        .stdin(stdin)
        .output()
        .expect("run redis-cli")
}

fn redis_cli(server: &RedisServer, args: &[&str]) -> Output {
    redis_cli_with_stdin(server, args, Stdio::null())
}

fn show(out: &Output) -> String {
    format!(
        "status {:?}\nstdout {:?}\nstderr {:?}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Seeds one key of each type, through redis-cli.
fn seed(server: &RedisServer) {
    for cmd in [
        &["SET", "greeting", "hello world"][..],
        &["SET", "binary", "a\tb\"c\\\x01\x7f"],
        &["RPUSH", "list", "one", "two", "three"],
        &["HSET", "hash", "f1", "v1", "f2", "v2"],
        &["SADD", "set", "x"],
        &["ZADD", "zset", "1.5", "a", "2", "b"],
    ] {
        let out = redis_cli(server, cmd);
        assert!(
            out.status.success() && !out.stdout.starts_with(b"ERR"),
            "seeding {cmd:?}: {}",
            show(&out)
        );
    }
}

/// Read-only commands (so running them twice gives the same answer) covering every
/// reply type redis-cli 7 can print, in both dialects.
const COMPARED: &[&[&str]] = &[
    &["GET", "greeting"],
    &["GET", "binary"],
    &["GET", "missing"],
    &["STRLEN", "greeting"],
    &["LRANGE", "list", "0", "-1"],
    &["LRANGE", "missing", "0", "-1"],
    &["HGETALL", "hash"],
    &["HGETALL", "missing"],
    &["SMEMBERS", "set"],
    &["ZRANGE", "zset", "0", "-1", "WITHSCORES"],
    &["ZSCORE", "zset", "a"],
    &["PING"],
    &["ECHO", "-5"],
    &["DEBUG", "PROTOCOL", "string"],
    &["DEBUG", "PROTOCOL", "integer"],
    &["DEBUG", "PROTOCOL", "double"],
    &["DEBUG", "PROTOCOL", "null"],
    &["DEBUG", "PROTOCOL", "array"],
    &["DEBUG", "PROTOCOL", "set"],
    &["DEBUG", "PROTOCOL", "map"],
    &["DEBUG", "PROTOCOL", "verbatim"],
    &["DEBUG", "PROTOCOL", "true"],
    &["DEBUG", "PROTOCOL", "false"],
];

#[test]
fn replies_print_exactly_as_redis_cli_prints_them() {
    let server = RedisServer::start(&[]);
    seed(&server);
    for driver in DRIVERS {
        for cmd in COMPARED {
            for (ours_flag, cli_flag) in [("--resp2", None), ("--resp3", Some("-3"))] {
                let mut args = vec![ours_flag];
                args.extend_from_slice(cmd);
                let mine = ours(&server, driver, &args);
                let mut cli_args: Vec<&str> = cli_flag.into_iter().collect();
                cli_args.extend_from_slice(cmd);
                let theirs = redis_cli(&server, &cli_args);
                assert!(theirs.status.success(), "redis-cli {cli_args:?}: {}", show(&theirs));
                assert_eq!(
                    mine.stdout,
                    theirs.stdout,
                    "{driver} {ours_flag} {cmd:?}\nours:     {}\nredis-cli: {}",
                    show(&mine),
                    show(&theirs)
                );
                assert_eq!(mine.status.code(), Some(0), "{driver} {cmd:?}: {}", show(&mine));
            }
        }
    }
}

#[test]
fn set_then_get_round_trips_binary_safe_arguments() {
    let server = RedisServer::start(&[]);
    for driver in DRIVERS {
        let key = format!("cli:{driver}");
        let value = "-value with spaces, \"quotes\" and a leading dash";
        let set = ours(&server, driver, &["SET", &key, value]);
        assert_eq!(
            (set.status.code(), &set.stdout[..]),
            (Some(0), &b"OK\n"[..]),
            "{}",
            show(&set)
        );
        let get = ours(&server, driver, &["GET", &key]);
        assert_eq!(get.status.code(), Some(0), "{}", show(&get));
        assert_eq!(get.stdout, format!("{value}\n").into_bytes());
        // What we wrote, redis-cli reads back identically.
        assert_eq!(redis_cli(&server, &["GET", &key]).stdout, get.stdout);
        let incr = ours(&server, driver, &["INCRBY", &format!("{key}:n"), "-3"]);
        assert_eq!(
            (incr.status.code(), &incr.stdout[..]),
            (Some(0), &b"-3\n"[..]),
            "{}",
            show(&incr)
        );
    }
}

#[test]
fn an_error_reply_prints_like_redis_cli_and_exits_1() {
    let server = RedisServer::start(&[]);
    seed(&server);
    for driver in DRIVERS {
        for cmd in [
            &["NOSUCHCOMMAND", "a"][..],
            &["INCR", "greeting"],
            &["LPUSH", "greeting", "x"],
            &["GET"],
        ] {
            for (ours_flag, cli_flag) in [("--resp2", None), ("--resp3", Some("-3"))] {
                let mut args = vec![ours_flag];
                args.extend_from_slice(cmd);
                let mine = ours(&server, driver, &args);
                assert_eq!(mine.status.code(), Some(1), "{driver} {cmd:?}: {}", show(&mine));
                let mut cli_args: Vec<&str> = cli_flag.into_iter().collect();
                cli_args.extend_from_slice(cmd);
                let theirs = redis_cli(&server, &cli_args);
                assert!(
                    theirs.stdout.starts_with(b"ERR") || theirs.stdout.starts_with(b"WRONGTYPE"),
                    "redis-cli answered an error: {}",
                    show(&theirs)
                );
                assert_eq!(mine.stdout, theirs.stdout, "{driver} {cmd:?}: {}", show(&mine));
            }
        }
    }
}

#[test]
fn connection_refused_exits_1_with_a_message() {
    let port = free_port();
    for driver in DRIVERS {
        let url = format!("redis://127.0.0.1:{port}");
        let out = monocoque(&["redis", "--url", &url, "--driver", driver, "PING"]);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(out.stdout.is_empty(), "{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&port.to_string()),
            "the message names the address: {stderr}"
        );
        let piped = monocoque(&["redis", "--pipe", "--url", &url, "--driver", driver]);
        assert_eq!(piped.status.code(), Some(1), "{}", show(&piped));
    }
}

#[test]
fn usage_errors_and_help() {
    let out = monocoque(&["redis"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("<CMD>") && stderr.contains("Usage"), "{stderr}");

    let out = monocoque(&["redis", "--pipe", "GET", "k"]);
    assert_eq!(out.status.code(), Some(2), "--pipe takes no command: {}", show(&out));

    let out = monocoque(&["redis", "--driver", "epoll", "PING"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));

    for args in [&["redis", "--help"][..], &["--help"], &["resp", "--help"]] {
        let out = monocoque(args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", show(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"), "{}", show(&out));
    }
    let help = String::from_utf8_lossy(&monocoque(&["redis", "--help"]).stdout).into_owned();
    for option in ["--url", "--driver", "--resp2", "--resp3", "--pipe", "uring", "mio"] {
        assert!(help.contains(option), "help mentions {option}: {help}");
    }
}

/// Writes `n` RESP `SET key:<i> value-<i>` commands to `path`.
fn write_sets(path: &Path, n: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create input"));
    for i in 0..n {
        let (key, value) = (format!("key:{i}"), format!("value-{i}"));
        write!(
            out,
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        )
        .expect("write input");
    }
    out.flush().expect("write input");
}

fn dbsize(server: &RedisServer) -> Vec<u8> {
    redis_cli(server, &["DBSIZE"]).stdout
}

fn file(path: &Path) -> Stdio {
    Stdio::from(std::fs::File::open(path).expect("open input"))
}

#[test]
fn pipe_mass_inserts_100k_sets_like_redis_cli() {
    const N: usize = 100_000;
    let server = RedisServer::start(&[]);
    let dir = TempDir::new("cli-pipe");
    let input = dir.path.join("sets.resp");
    write_sets(&input, N);

    assert_eq!(redis_cli(&server, &["FLUSHALL"]).stdout, b"OK\n");
    let theirs = redis_cli_with_stdin(&server, &["--pipe"], file(&input));
    assert_eq!(theirs.status.code(), Some(0), "{}", show(&theirs));
    assert_eq!(dbsize(&server), format!("{N}\n").into_bytes());

    let url = url(&server);
    for driver in DRIVERS {
        assert_eq!(redis_cli(&server, &["FLUSHALL"]).stdout, b"OK\n");
        let mine = monocoque_with_stdin(&["redis", "--pipe", "--url", &url, "--driver", driver], file(&input));
        assert_eq!(mine.status.code(), Some(0), "{driver}: {}", show(&mine));
        let expected = format!(
            "All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 0, replies: {N}\n"
        );
        assert_eq!(String::from_utf8_lossy(&mine.stdout), expected, "{driver}");
        assert_eq!(mine.stdout, theirs.stdout, "same summary as redis-cli --pipe");
        assert!(mine.stderr.is_empty(), "{driver}: {}", show(&mine));
        assert_eq!(dbsize(&server), format!("{N}\n").into_bytes(), "{driver}: DBSIZE");
        let last = redis_cli(&server, &["GET", &format!("key:{}", N - 1)]);
        assert_eq!(last.stdout, format!("value-{}\n", N - 1).into_bytes());
    }
}

#[test]
fn an_error_inside_the_pipe_is_counted_and_exits_1() {
    let server = RedisServer::start(&[]);
    seed(&server);
    let dir = TempDir::new("cli-pipe-error");
    let input = dir.path.join("mixed.resp");
    // SET, an unknown command, a wrong-type INCR on a list, then two good commands.
    std::fs::write(
        &input,
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n\
          *1\r\n$5\r\nBOGUS\r\n\
          *2\r\n$4\r\nINCR\r\n$4\r\nlist\r\n\
          *2\r\n$4\r\nINCR\r\n$1\r\na\r\n\
          *1\r\n$4\r\nPING\r\n",
    )
    .expect("write input");
    let theirs = redis_cli_with_stdin(&server, &["--pipe"], file(&input));
    assert_eq!(theirs.status.code(), Some(1), "{}", show(&theirs));
    let url = url(&server);
    for driver in DRIVERS {
        let mine = monocoque_with_stdin(&["redis", "--pipe", "--url", &url, "--driver", driver], file(&input));
        assert_eq!(mine.status.code(), Some(1), "{driver}: {}", show(&mine));
        let stdout = String::from_utf8_lossy(&mine.stdout);
        assert!(stdout.ends_with("errors: 2, replies: 5\n"), "{driver}: {stdout}");
        assert_eq!(mine.stdout, theirs.stdout, "same summary as redis-cli --pipe");
        let stderr = String::from_utf8_lossy(&mine.stderr);
        assert!(stderr.contains("ERR unknown command 'BOGUS'"), "{driver}: {stderr}");
        assert!(stderr.contains("WRONGTYPE"), "{driver}: {stderr}");
        assert_eq!(stderr.lines().count(), 2, "one line per error reply: {stderr}");
    }
}

#[test]
fn malformed_pipe_input_exits_1_after_sending_what_came_before() {
    let server = RedisServer::start(&[]);
    let url = url(&server);
    for driver in DRIVERS {
        assert_eq!(redis_cli(&server, &["FLUSHALL"]).stdout, b"OK\n");
        let mut child = Command::new(env!("CARGO_BIN_EXE_monocoque"))
            .args(["redis", "--pipe", "--url", &url, "--driver", driver])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monocoque");
        let mut stdin = child.stdin.take().expect("piped stdin");
        stdin
            .write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*1\r\n$4\r\nPI")
            .expect("write");
        drop(stdin);
        let out = child.wait_with_output().expect("wait");
        assert_eq!(out.status.code(), Some(1), "{driver}: {}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("input ended inside command 2"),
            "{driver}: {}",
            show(&out)
        );
        assert_eq!(dbsize(&server), b"1\n", "{driver}: the complete SET before it was sent");
    }
}
