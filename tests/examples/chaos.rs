//! The chaos suite as a soak run: as many clients and as long as asked,
//! then the same figures as the CI test.
//!
//! ```text
//! cargo build --release -p kefu-relay
//! cargo run --release -p kefu-tests --example chaos -- --seconds 600 --seed 7 --visitors 200 --agents 20
//! ```
//!
//! Exits non-zero when the checker found anything lost, doubled, out of
//! order or left behind.

use anyhow::{Context, Result, bail};
use kefu_tests::chaos::{self, ChaosConfig};

const USAGE: &str = "usage: chaos [--seconds N] [--seed N] [--visitors N] [--agents N] [--kills N]";

#[tokio::main]
async fn main() -> Result<()> {
    let config = parse(std::env::args().skip(1))?;
    eprintln!(
        "chaos: seed {}, {} visitors, {} agents, {} s under fire, {} kill -9 restarts",
        config.seed,
        config.visitors,
        config.agents,
        config.duration.as_secs(),
        config.kills
    );
    let figures = chaos::run(&config).await?;
    println!("{figures}");
    figures.assert_clean()
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<ChaosConfig> {
    let (mut seconds, mut seed, mut visitors, mut agents, mut kills) = (120, 7, 50, 5, None);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            std::process::exit(0);
        }
        let value = args.next().with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let number = || value.parse::<u64>().with_context(|| format!("{flag} {value}: not a number\n{USAGE}"));
        match flag.as_str() {
            "--seconds" => seconds = number()?,
            "--seed" => seed = number()?,
            "--visitors" => visitors = usize::try_from(number()?)?,
            "--agents" => agents = usize::try_from(number()?)?,
            "--kills" => kills = Some(u32::try_from(number()?)?),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    let mut config = ChaosConfig::soak(seed, seconds, visitors, agents);
    if let Some(kills) = kills {
        config.kills = kills;
    }
    Ok(config)
}
