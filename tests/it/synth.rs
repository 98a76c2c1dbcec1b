//! The synthetic capture generator against its own ground truth: replay must agree on every attempt.

use std::collections::HashMap;

use synscope::synth::{generate, SynthConfig};

#[test]
fn test_synthetic_capture_agrees_with_ground_truth() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, truth) = (dir.path().join("synth.pcap"), dir.path().join("synth.tsv"));
    let mut pcap_out = std::fs::File::create(&pcap).expect("create pcap");
    let mut truth_out = Vec::new();
    let stats =
        generate(SynthConfig { flows: 20_000, seed: 7, ..SynthConfig::default() }, &mut pcap_out, &mut truth_out)
            .expect("generate");
    std::fs::write(&truth, &truth_out).expect("write truth");
    assert_eq!(stats.flows, 20_000);

    let (attempts, capture) = crate::util::replay(&pcap);
    assert_eq!(capture.packets, stats.packets);
    assert_eq!(capture.undecodable, 0);
    let ours: HashMap<(String, String), (&str, &str)> = attempts
        .iter()
        .map(|a| ((a.client.to_string(), a.server.to_string()), (a.outcome.name(), a.errno.map_or("-", |e| e.name()))))
        .collect();
    let text = String::from_utf8(truth_out).expect("utf-8");
    let mut disagreements = Vec::new();
    let mut kinds: HashMap<(&str, &str), usize> = HashMap::new();
    for line in text.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        let want = (c[2], c[3]);
        *kinds.entry(want).or_default() += 1;
        match ours.get(&(c[0].to_string(), c[1].to_string())) {
            Some(got) if *got == want => {}
            got => disagreements.push(format!("{} -> {}: want {want:?}, got {got:?}", c[0], c[1])),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of 20000 disagree:\n{}",
        disagreements.len(),
        disagreements[..disagreements.len().min(10)].join("\n")
    );
    assert_eq!(attempts.len(), 20_000, "no attempt more than the generator made");
    assert!(kinds.len() >= 6, "every kind of attempt is in the mix: {kinds:?}");
}
