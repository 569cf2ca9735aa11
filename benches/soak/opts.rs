//! The soak run's options: `--quick`, `--duration`, `--rate` and `--ward-bin`, and the
//! key rotation period and warm-up derived from the duration.

use std::path::PathBuf;
use std::time::Duration;

use loadgen::args::parse_duration;

#[derive(Debug, Clone)]
pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) duration: Duration,
    pub(crate) rate: u64,
    pub(crate) rotation: f64,
    pub(crate) warmup: f64,
    pub(crate) ward_bin: PathBuf,
}

impl Opts {
    pub(crate) fn parse() -> Result<Self, String> {
        let mut quick = false;
        let mut duration = None;
        let mut rate = 1500;
        let mut ward_bin = PathBuf::from(env!("CARGO_BIN_EXE_ward"));
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--bench" => {} // cargo bench passes it
                "--duration" => {
                    let v = args.next().unwrap_or_default();
                    duration = Some(
                        parse_duration(&v)
                            .ok_or("--duration takes 30m, 90s, 1h or a number of seconds")?,
                    );
                }
                "--rate" => {
                    rate = args
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .filter(|r| *r > 0)
                        .ok_or("--rate takes a positive number of checks per second")?;
                }
                "--ward-bin" => ward_bin = args.next().ok_or("--ward-bin takes a path")?.into(),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let duration = duration.unwrap_or(if quick {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(30 * 60)
        });
        let d = duration.as_secs_f64();
        // Two minutes between rotations, and at least three rotations in a short run.
        let rotation = (d / 3.0).clamp(20.0, 120.0);
        // Warm-up: every injected failure has happened once (the cycles are 48 s and
        // 62 s), the first rotation is done, caches are at their steady size.
        let warmup = (d / 3.0).clamp(20.0, 180.0);
        Ok(Opts {
            quick,
            duration,
            rate,
            rotation,
            warmup,
            ward_bin,
        })
    }
}
