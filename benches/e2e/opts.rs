//! The e2e benchmark's options: `--quick` and the others parsed from the command line.

use std::path::PathBuf;
use std::time::Duration;

use loadgen::args::{list, number};

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) pin: bool,
    pub(crate) reps: usize,
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) concurrency: usize,
    pub(crate) connections: usize,
    pub(crate) rate: u64,
    pub(crate) tokens: usize,
    pub(crate) single_duration: Duration,
    /// Workload keys to run (`a`..`e`); all when empty.
    pub(crate) only: Vec<String>,
    /// The ward binary to serve with (before/after comparisons); this build's by default.
    pub(crate) ward_bin: PathBuf,
    /// `--telemetry RATIO`: ward exports traces (sampling RATIO of the checks, which
    /// carry no traceparent) to an OTLP sink in this process that drops them.
    pub(crate) telemetry: Option<f64>,
}

impl Opts {
    pub(crate) fn parse() -> Result<Self, String> {
        let mut o = Opts {
            quick: false,
            pin: true,
            reps: 3,
            duration: Duration::from_secs(5),
            warmup: Duration::from_secs(1),
            concurrency: 64,
            connections: 2,
            rate: 20_000,
            tokens: 100_000,
            single_duration: Duration::from_secs(3),
            only: Vec::new(),
            ward_bin: PathBuf::from(env!("CARGO_BIN_EXE_ward")),
            telemetry: None,
        };
        let mut args = std::env::args().skip(1);
        let num = number;
        let mut explicit_tokens = None;
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => o.quick = true,
                "--no-pin" => o.pin = false,
                "--bench" => {} // cargo bench passes it
                "--reps" => o.reps = num(args.next(), "--reps")?.max(1) as usize,
                "--duration" => o.duration = Duration::from_secs(num(args.next(), "--duration")?),
                "--concurrency" => {
                    o.concurrency = num(args.next(), "--concurrency")?.max(1) as usize
                }
                "--connections" => {
                    o.connections = num(args.next(), "--connections")?.max(1) as usize
                }
                "--rate" => o.rate = num(args.next(), "--rate")?.max(1),
                "--tokens" => explicit_tokens = Some(num(args.next(), "--tokens")? as usize),
                "--ward-bin" => {
                    o.ward_bin = args.next().ok_or("--ward-bin takes a path")?.into();
                }
                "--workloads" => o.only = list(args.next(), "--workloads", "a,e")?,
                "--telemetry" => {
                    let ratio: f64 = args
                        .next()
                        .and_then(|r| r.parse().ok())
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or("--telemetry takes a sample ratio from 0.0 to 1.0")?;
                    o.telemetry = Some(ratio);
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        if o.quick {
            o.pin = false;
            o.reps = 1;
            o.tokens = 300;
            o.rate = 1_000;
            o.concurrency = o.concurrency.min(16);
        }
        if let Some(t) = explicit_tokens {
            o.tokens = t.max(10);
        }
        Ok(o)
    }
}
