//! The chaos test: random faults, throttling, eventual consistency, external deletes and edits,
//! duplicate, reordered and lost events, and restarts in the middle of a pass, on a small fleet
//! and a paused clock. `make bench` runs the same scenario on 8,000 interfaces.

mod support;

use support::chaos::{ChaosConfig, run};

/// Seeds whose runs must all converge; each covers different faults and victims.
const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

#[tokio::test(start_paused = true)]
async fn converges_without_duplicates_or_foreign_writes() {
    for seed in SEEDS {
        let config = ChaosConfig::small(seed);
        let report = run(&config).await;
        let context = format!("seed {seed}: {report:#?}");

        // The stated bound: full coverage within two resyncs more than the most sessions the
        // actors deleted on one interface (see `resync_bound`).
        let resyncs = report.resyncs_to_converge.unwrap_or_else(|| panic!("did not converge; {context}"));
        assert!(resyncs <= report.resync_bound, "{context}");
        assert_eq!(report.mirrored, report.eligible, "{context}");
        assert_eq!(report.max_duplicates, 0, "an interface had two sessions of the policy; {context}");
        assert_eq!(report.foreign_sessions_touched, 0, "{context}");
        assert_eq!(report.foreign_sessions_lost, 0, "{context}");

        // The run must have been hard enough to prove something.
        assert!(report.eligible > 2 * config.instances, "the actors attached nothing; {context}");
        assert!(report.passes_cut > 0, "no restart cut a pass short; {context}");
        assert!(report.events_lost > 0, "{context}");
        assert!(report.external_actions >= config.rounds * config.actions_per_round / 2, "{context}");
    }
}
