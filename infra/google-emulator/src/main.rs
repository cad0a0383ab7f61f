//! `google-emulator [--host 127.0.0.1] [--port 8085] [--client-id ID] [--client-secret S]
//! [--publishing-status in-production|testing]`
//!
//! Environment fallbacks: `GOOGLE_EMULATOR_PORT`, `GOOGLE_CLIENT_ID`,
//! `GOOGLE_CLIENT_SECRET`, `GOOGLE_EMULATOR_PUBLISHING_STATUS`.
//! `--publishing-status testing` emulates a consent screen in Testing: every
//! refresh token expires 7 days after consent. Prints `google-emulator listening on http://HOST:PORT`
//! once ready; scripts wait for that line. Never logs tokens or the secret.

use std::io::Write;
use std::process::ExitCode;

use google_emulator::{Emulator, EmulatorConfig};

const USAGE: &str = "usage: google-emulator [--host 127.0.0.1] [--port 8085] [--client-id ID] [--client-secret SECRET] [--publishing-status in-production|testing]";

struct Options {
    host: String,
    port: u16,
    config: EmulatorConfig,
}

fn parse_options(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let mut config = EmulatorConfig::default();
    if let Some(id) = env("GOOGLE_CLIENT_ID") {
        config.client_id = id;
    }
    if let Some(secret) = env("GOOGLE_CLIENT_SECRET") {
        config.client_secret = secret;
    }
    if let Some(status) = env("GOOGLE_EMULATOR_PUBLISHING_STATUS") {
        config.publishing_status = status.parse()?;
    }
    let mut host = "127.0.0.1".to_owned();
    let mut port = env("GOOGLE_EMULATOR_PORT").unwrap_or_else(|| "8085".to_owned());
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_owned());
        }
        let (name, inline) = match flag.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (flag, None),
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))?;
        match name.as_str() {
            "--host" => host = value,
            "--port" => port = value,
            "--client-id" => config.client_id = value,
            "--client-secret" => config.client_secret = value,
            "--publishing-status" => config.publishing_status = value.parse()?,
            _ => return Err(format!("unknown argument {name}\n{USAGE}")),
        }
    }
    let port = port.parse().map_err(|_| format!("invalid port {port:?}"))?;
    Ok(Options { host, port, config })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt().with_writer(std::io::stderr).init();
    let mut options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    // Benchmarks drive the binary concurrently; use both cores.
    options.config.worker_threads = 2;
    let emulator = match Emulator::bind(options.config, (options.host.as_str(), options.port)) {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!(
                "google-emulator: cannot listen on {}:{}: {error}",
                options.host, options.port
            );
            return ExitCode::FAILURE;
        }
    };
    let port = emulator.local_addr().port();
    println!("google-emulator listening on http://{}:{port}", options.host);
    let _ = std::io::stdout().flush();
    tracing::info!(client_id = %emulator.client_id(), "ready");
    // The server runs on its own thread until a signal ends the process.
    loop {
        std::thread::park();
    }
}

#[cfg(test)]
mod tests {
    use google_emulator::PublishingStatus;

    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|arg| (*arg).to_owned()).collect()
    }

    #[test]
    fn flags_override_defaults() {
        let options = parse_options(args(&["--host", "0.0.0.0", "--port=0", "--client-id", "cid"])).unwrap();
        assert_eq!((options.host.as_str(), options.port), ("0.0.0.0", 0));
        assert_eq!(options.config.client_id, "cid");
    }

    #[test]
    fn publishing_status_flag() {
        let options = parse_options(args(&["--publishing-status", "testing"])).unwrap();
        assert_eq!(options.config.publishing_status, PublishingStatus::Testing);
        let options = parse_options(args(&["--publishing-status=in-production"])).unwrap();
        assert_eq!(options.config.publishing_status, PublishingStatus::InProduction);
        assert!(parse_options(args(&["--publishing-status", "draft"])).is_err());
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse_options(args(&["--port"])).is_err());
        assert!(parse_options(args(&["--port", "http"])).is_err());
        assert!(parse_options(args(&["--verbose", "1"])).is_err());
    }
}
