//! Writes a synthetic capture and its ground truth:
//! `cargo run --release --example synth -- FLOWS OUT.pcap OUT.truth.tsv [SEED] [--syn-flood]`
//! (OUT.pcapng writes pcapng; `--syn-flood` writes lone SYNs, never answered, 200,000 a second,
//! instead of the mix of 10,000 attempts a second).

use std::io::BufWriter;

use anyhow::Context as _;
use synscope::synth::{generate, SynthConfig};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let syn_flood = args.iter().any(|a| a == "--syn-flood");
    let args: Vec<&String> = args.iter().filter(|a| *a != "--syn-flood").collect();
    let [flows, pcap, truth, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: synth FLOWS OUT.pcap OUT.truth.tsv [SEED] [--syn-flood]");
    };
    let config = SynthConfig {
        flows: flows.parse().context("FLOWS must be a number")?,
        seed: rest.first().map_or(Ok(1), |s| s.parse()).context("SEED must be a number")?,
        pcapng: pcap.ends_with(".pcapng"),
        syn_flood,
        start_interval_us: if syn_flood { 5 } else { SynthConfig::default().start_interval_us },
    };
    let mut pcap =
        BufWriter::with_capacity(1 << 20, std::fs::File::create(pcap).with_context(|| format!("cannot write {pcap}"))?);
    let mut truth = BufWriter::new(std::fs::File::create(truth).with_context(|| format!("cannot write {truth}"))?);
    let stats = generate(config, &mut pcap, &mut truth)?;
    eprintln!("{} attempts, {} packets", stats.flows, stats.packets);
    Ok(())
}
