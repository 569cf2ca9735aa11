//! The e2e benchmark's report: the table of both servers' runs, and the targets.

use loadgen::summary::Summary;

pub(crate) struct Row {
    pub(crate) workload: String,
    pub(crate) mode: String,
    pub(crate) base: Summary,
    pub(crate) ward: Summary,
}

pub(crate) fn print_table(rows: &[Row]) {
    println!();
    println!(
        "| workload | mode | server | checks/s | p50 µs | p99 µs | p99.9 µs | server CPU µs/check | server sleeps/check | load gen busy | runs (checks/s) | other load |"
    );
    println!("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|");
    for r in rows {
        for (name, s) in [("baseline", &r.base), ("ward", &r.ward)] {
            let runs: Vec<String> = s.rates.iter().map(|x| format!("{x:.0}")).collect();
            let dropped = if s.dropped > 0 {
                format!(" ({} dropped)", s.dropped)
            } else {
                String::new()
            };
            println!(
                "| {} | {} | {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.2} | {:.0}% | {}{dropped} | {} |",
                r.workload,
                r.mode,
                s.rate,
                s.p50,
                s.p99,
                s.p999,
                s.cpu,
                s.sleeps,
                s.client * 100.0,
                runs.join(", "),
                s.noise
                    .map_or_else(|| "-".to_string(), |n| format!("{:.0}%", n * 100.0))
            );
        }
        println!(
            "| {} | {} | **ward/baseline** | **{:.2}** | {:.2} | **{:.2}** | {:.2} | {:.2} | | | | |",
            r.workload,
            r.mode,
            r.ward.rate / r.base.rate,
            r.ward.p50 / r.base.p50,
            r.ward.p99 / r.base.p99,
            r.ward.p999 / r.base.p999,
            r.ward.cpu / r.base.cpu,
        );
    }
}

pub(crate) fn print_targets(rows: &[Row], idle_rss: u64, rss_after: &[(String, u64)]) {
    let find = |w: &str, m: &str| {
        rows.iter()
            .find(|r| r.workload.starts_with(w) && r.mode.starts_with(m))
    };
    let verdict = |ok: bool| if ok { "holds" } else { "MISSED" };
    if rows.is_empty() {
        return;
    }
    println!();
    if let Some(r) = find("(a)", rows[0].mode.as_str()) {
        let t = r.ward.rate / r.base.rate;
        let p = r.ward.p99 / r.base.p99;
        println!(
            "- target (a) throughput >= 0.90x baseline: {t:.2}x {}",
            verdict(t >= 0.90)
        );
        println!(
            "- target (a) p99 <= 1.3x baseline: {p:.2}x {}",
            verdict(p <= 1.3)
        );
    }
    if let Some(r) = find("(b)", rows[0].mode.as_str()) {
        let t = r.ward.rate / r.base.rate;
        println!(
            "- target (b) throughput >= 0.60x baseline: {t:.2}x {}",
            verdict(t >= 0.60)
        );
    }
    if let Some(r) = find("(e)", rows[0].mode.as_str()) {
        let t = r.ward.rate / r.base.rate;
        println!(
            "- target (e) throughput >= 0.95x baseline: {t:.2}x {}",
            verdict(t >= 0.95)
        );
    }
    for w in ["(a)", "(e)"] {
        if let Some(r) = find(w, "1 in flight") {
            let p = r.ward.p50 / r.base.p50;
            println!(
                "- target {w} one in flight p50 <= 1.1x baseline: {p:.2}x {}",
                verdict(p <= 1.1)
            );
        }
    }
    let idle = idle_rss as f64 / 1024.0;
    println!(
        "- target idle RSS <= 20 MiB: {idle:.1} MiB {}",
        verdict(idle <= 20.0)
    );
    if let Some((_, kib)) = rss_after.iter().find(|(w, _)| w.contains("(b)")) {
        let m = *kib as f64 / 1024.0;
        println!(
            "- target RSS after (b) <= 64 MiB: {m:.1} MiB {}",
            verdict(m <= 64.0)
        );
    }
}
