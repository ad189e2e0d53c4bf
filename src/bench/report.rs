//! The results: a human summary for stdout and a JSON document for `--json`.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::Settings;
use super::body::SizeSpec;
use super::hist::Histogram;
use super::worker::{OpKind, OpStats, ThreadStats};

/// The percentiles reported, with their names.
const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99.9", 0.999)];

/// `4 KiB`, `1 MiB`, `1.5 GiB`, `100 B`.
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 { format!("{value} {}", UNITS[unit]) } else { format!("{value:.2} {}", UNITS[unit]) }
}

/// `4 KiB`, or `4 KiB:70, 1 MiB:30` for a distribution.
pub fn sizes_text(spec: &SizeSpec) -> String {
    match spec.single() {
        Some(size) => size_text(size),
        None => spec.0.iter().map(|(s, w)| format!("{}:{w}", size_text(*s))).collect::<Vec<_>>().join(", "),
    }
}

fn ms(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

fn seconds(total: &ThreadStats) -> f64 {
    total.elapsed.as_secs_f64().max(1e-9)
}

fn workload_text(settings: &Settings) -> String {
    let args = &settings.args;
    let mut text = args.workload_name().to_owned();
    if settings.mix.len() > 1 {
        let mix: Vec<String> = settings.mix.iter().map(|(k, w)| format!("{}={w}", k.name())).collect();
        text.push_str(&format!(" ({})", mix.join(",")));
    }
    text
}

/// The summary printed on stdout.
pub fn summary(settings: &Settings, total: &ThreadStats, keys_exhausted: bool) -> String {
    let args = &settings.args;
    let secs = seconds(total);
    let mut out = String::new();
    let what = match (args.null, args.workload_name()) {
        (true, "put") => format!("null PUT of {} to {}", sizes_text(&args.size), args.path),
        (true, _) => format!("null GET {}", args.path),
        (false, _) => format!("{} of {} objects", workload_text(settings), sizes_text(&args.size)),
    };
    let target = if args.null { args.endpoint.clone() } else { format!("{} bucket {}", args.endpoint, args.bucket) };
    let _ = writeln!(
        out,
        "kaligon bench: {what}, {} connections on {} threads, {target}, {:.2} s{}{}{}{}",
        args.concurrency,
        settings.threads,
        secs,
        if args.verify { ", verified" } else { "" },
        if args.unsigned_payload { ", unsigned payload" } else { "" },
        args.checksum.algorithm().map_or(String::new(), |a| format!(", x-amz-checksum-{}", a.header_suffix())),
        if settings.mix.iter().any(|(k, _)| *k == OpKind::Multipart) {
            format!(", parts of {}", size_text(args.part_size))
        } else {
            String::new()
        },
    );
    if let Some(rate) = args.rate {
        let _ = writeln!(
            out,
            "  open loop at {rate} ops/s (latency from each operation's scheduled time); {} of them started \
             more than 1 ms late (every connection busy)",
            total.late
        );
    }
    let mut all = OpStats::default();
    for kind in OpKind::ALL {
        let op = &total.ops[kind as usize];
        if op.ok == 0 && op.errors.is_empty() {
            continue;
        }
        all.merge(op);
        let _ = writeln!(
            out,
            "  {:<6} {:>10} ops {:>11.1} ops/s {:>10.2} MiB/s   latency ms {}",
            kind.name(),
            op.ok,
            op.ok as f64 / secs,
            op.bytes as f64 / secs / 1048576.0,
            percentiles_text(&op.latency),
        );
        if kind == OpKind::Get && op.ok > 0 {
            let _ = writeln!(out, "  {:<54}   ttfb ms    {}", "", percentiles_text(&op.ttfb));
        }
    }
    if settings.mix.len() > 1 {
        let _ = writeln!(
            out,
            "  {:<6} {:>10} ops {:>11.1} ops/s {:>10.2} MiB/s   latency ms {}",
            "total",
            all.ok,
            all.ok as f64 / secs,
            all.bytes as f64 / secs / 1048576.0,
            percentiles_text(&all.latency),
        );
    }
    if all.errors.is_empty() {
        let _ = writeln!(out, "  errors: none");
    } else {
        let list: Vec<String> = all.errors.iter().map(|(code, n)| format!("{code} {n}")).collect();
        let _ = writeln!(out, "  errors: {} ({})", all.error_count(), list.join(", "));
    }
    if keys_exhausted {
        let _ = writeln!(out, "  note: every object of the key space was used up before the time ran out");
    }
    out
}

fn percentiles_text(h: &Histogram) -> String {
    let mut text = String::new();
    for (name, q) in QUANTILES {
        let _ = write!(text, "{name} {:.3}  ", ms(h.quantile(q)));
    }
    let _ = write!(text, "max {:.3}", ms(h.max()));
    text
}

/// A JSON string literal.
fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON number; non-finite values (which JSON lacks) become `null`.
fn number(value: f64) -> String {
    if value.is_finite() { format!("{}", (value * 1000.0).round() / 1000.0) } else { "null".to_owned() }
}

fn optional<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

fn histogram_json(h: &Histogram) -> String {
    let mut fields = vec![
        format!("\"count\":{}", h.count()),
        format!("\"mean\":{}", number(ms(h.mean()))),
        format!("\"min\":{}", number(ms(h.min()))),
    ];
    for (name, q) in QUANTILES {
        fields.push(format!("{}:{}", string(name), number(ms(h.quantile(q)))));
    }
    fields.push(format!("\"max\":{}", number(ms(h.max()))));
    format!("{{{}}}", fields.join(","))
}

fn errors_json(errors: &BTreeMap<String, u64>) -> String {
    let items: Vec<String> = errors.iter().map(|(code, n)| format!("{}:{n}", string(code))).collect();
    format!("{{{}}}", items.join(","))
}

fn op_json(op: &OpStats, secs: f64) -> String {
    format!(
        "{{\"ops\":{},\"errors\":{},\"ops_per_s\":{},\"bytes\":{},\"mib_per_s\":{},\"latency_ms\":{},\"ttfb_ms\":{},\"errors_by_code\":{}}}",
        op.ok,
        op.error_count(),
        number(op.ok as f64 / secs),
        op.bytes,
        number(op.bytes as f64 / secs / 1048576.0),
        histogram_json(&op.latency),
        histogram_json(&op.ttfb),
        errors_json(&op.errors),
    )
}

fn config_json(settings: &Settings) -> String {
    let args = &settings.args;
    let mix: Vec<String> = settings.mix.iter().map(|(k, w)| format!("{}:{w}", string(k.name()))).collect();
    let config = [
        format!("\"endpoint\":{}", string(&args.endpoint)),
        format!("\"region\":{}", string(&args.region)),
        format!("\"bucket\":{}", if args.null { "null".to_owned() } else { string(&args.bucket) }),
        format!("\"prefix\":{}", string(&args.prefix)),
        format!("\"workload\":{}", string(args.workload_name())),
        format!("\"mix\":{{{}}}", mix.join(",")),
        format!("\"size_bytes\":{}", optional(args.size.single())),
        format!(
            "\"sizes\":[{}]",
            args.size.0.iter().map(|(s, w)| format!("{{\"bytes\":{s},\"weight\":{w}}}")).collect::<Vec<_>>().join(",")
        ),
        format!("\"part_size_bytes\":{}", args.part_size),
        format!(
            "\"checksum\":{}",
            args.checksum.algorithm().map_or_else(|| "null".to_owned(), |a| string(a.header_suffix()))
        ),
        format!("\"rate_ops_per_s\":{}", args.rate.map_or_else(|| "null".to_owned(), number)),
        format!("\"objects\":{}", optional(settings.objects)),
        format!("\"concurrency\":{}", args.concurrency),
        format!("\"threads\":{}", settings.threads),
        format!("\"connections_per_thread\":{:?}", settings.connections),
        format!("\"duration_s\":{}", settings.duration.map_or_else(|| "null".to_owned(), |d| number(d.as_secs_f64()))),
        format!("\"ops_limit\":{}", optional(args.ops)),
        format!("\"verify\":{}", args.verify),
        format!("\"unsigned_payload\":{}", args.unsigned_payload),
        format!("\"null\":{}", args.null),
        format!("\"path\":{}", if args.null { string(&args.path) } else { "null".to_owned() }),
        format!("\"pinned\":{}", !args.no_pin),
    ];
    config.join(",")
}

/// Every operation's results merged.
fn all_ops(total: &ThreadStats) -> OpStats {
    let mut all = OpStats::default();
    for op in &total.ops {
        all.merge(op);
    }
    all
}

/// The `--json` document: configuration, totals, per-operation results, errors, timeline.
pub fn json(settings: &Settings, total: &ThreadStats, started_unix: u64, keys_exhausted: bool) -> String {
    let secs = seconds(total);
    let mut all = OpStats::default();
    let mut operations = Vec::new();
    for kind in OpKind::ALL {
        let op = &total.ops[kind as usize];
        if op.ok == 0 && op.errors.is_empty() {
            continue;
        }
        all.merge(op);
        operations.push(format!("{}:{}", string(kind.name()), op_json(op, secs)));
    }
    let timeline: Vec<String> = total
        .timeline
        .iter()
        .enumerate()
        .map(|(i, s)| {
            format!(
                "{{\"second\":{i},\"ops\":{},\"bytes\":{},\"errors\":{},\"max_latency_ms\":{}}}",
                s.ops,
                s.bytes,
                s.errors,
                number(ms(s.max_latency_ns))
            )
        })
        .collect();
    format!(
        "{{\n\"tool\":\"kaligon bench\",\n\"version\":{},\n\"started_unix\":{started_unix},\n\"config\":{{{}}},\n\
         \"elapsed_s\":{},\n\"keys_exhausted\":{keys_exhausted},\n\"late_starts\":{},\n\"totals\":{},\n\"operations\":{{{}}},\n\
         \"errors_by_code\":{},\n\"timeline\":[\n{}\n]\n}}\n",
        string(env!("CARGO_PKG_VERSION")),
        config_json(settings),
        number(secs),
        total.late,
        op_json(&all, secs),
        operations.join(",\n"),
        errors_json(&all.errors),
        timeline.join(",\n"),
    )
}

/// The `--csv` header; `csv_rows` writes matching rows.
pub const CSV_HEADER: &str = "endpoint,round,operation,ops,errors,seconds,ops_per_s,mib_per_s,\
                              p50_ms,p90_ms,p99_ms,p99.9_ms,max_ms,ttfb_p50_ms,ttfb_p99_ms\n";

/// One CSV row per operation that ran.
pub fn csv_rows(out: &mut String, endpoint: &str, round: u32, total: &ThreadStats) {
    let secs = seconds(total);
    for kind in OpKind::ALL {
        let op = &total.ops[kind as usize];
        if op.ok == 0 && op.errors.is_empty() {
            continue;
        }
        let q = |h: &Histogram, q: f64| format!("{:.3}", ms(h.quantile(q)));
        let _ = writeln!(
            out,
            "{},{round},{},{},{},{secs:.3},{:.1},{:.2},{},{},{},{},{:.3},{},{}",
            endpoint.replace(',', "%2C"),
            kind.name(),
            op.ok,
            op.error_count(),
            op.ok as f64 / secs,
            op.bytes as f64 / secs / 1048576.0,
            q(&op.latency, 0.5),
            q(&op.latency, 0.9),
            q(&op.latency, 0.99),
            q(&op.latency, 0.999),
            ms(op.latency.max()),
            q(&op.ttfb, 0.5),
            q(&op.ttfb, 0.99),
        );
    }
}

/// One measured round of `--compare`.
pub struct Round {
    /// Index into the endpoints.
    pub endpoint: usize,
    pub round: u32,
    pub total: ThreadStats,
}

/// The figures compared between endpoints.
#[derive(Clone, Copy)]
struct Figures {
    ops_per_s: f64,
    mib_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn figures(total: &ThreadStats) -> Figures {
    let all = all_ops(total);
    let secs = seconds(total);
    Figures {
        ops_per_s: all.ok as f64 / secs,
        mib_per_s: all.bytes as f64 / secs / 1048576.0,
        p50_ms: ms(all.latency.quantile(0.5)),
        p99_ms: ms(all.latency.quantile(0.99)),
        errors: all.error_count(),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Medians over an endpoint's rounds.
fn medians(runs: &[Round], endpoint: usize) -> Figures {
    let mine: Vec<Figures> = runs.iter().filter(|r| r.endpoint == endpoint).map(|r| figures(&r.total)).collect();
    let m = |f: fn(&Figures) -> f64| median(mine.iter().map(f).collect());
    Figures {
        ops_per_s: m(|f| f.ops_per_s),
        mib_per_s: m(|f| f.mib_per_s),
        p50_ms: m(|f| f.p50_ms),
        p99_ms: m(|f| f.p99_ms),
        errors: mine.iter().map(|f| f.errors).sum(),
    }
}

/// The line printed after each round.
pub fn round_line(endpoint: &str, round: u32, total: &ThreadStats) -> String {
    let f = figures(total);
    format!(
        "round {round} {endpoint}: {:.1} ops/s {:.2} MiB/s p50 {:.3} ms p99 {:.3} ms, {} errors",
        f.ops_per_s, f.mib_per_s, f.p50_ms, f.p99_ms, f.errors
    )
}

/// The `--compare` summary: medians per endpoint and second/first ratios.
pub fn compare_summary(settings: &Settings, endpoints: &[&str; 2], runs: &[Round]) -> String {
    let args = &settings.args;
    let (a, b) = (medians(runs, 0), medians(runs, 1));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "kaligon bench --compare: {} of {} objects, {} connections on {} threads, {} rounds each, alternating",
        workload_text(settings),
        sizes_text(&args.size),
        args.concurrency,
        settings.threads,
        args.rounds
    );
    for (name, f) in [(endpoints[0], a), (endpoints[1], b)] {
        let _ = writeln!(
            out,
            "  median {name}: {:.1} ops/s {:.2} MiB/s p50 {:.3} ms p99 {:.3} ms, {} errors",
            f.ops_per_s, f.mib_per_s, f.p50_ms, f.p99_ms, f.errors
        );
    }
    let _ = writeln!(
        out,
        "  ratio second/first: ops/s {:.3}  MiB/s {:.3}  p50 {:.3}  p99 {:.3}",
        b.ops_per_s / a.ops_per_s,
        b.mib_per_s / a.mib_per_s,
        b.p50_ms / a.p50_ms,
        b.p99_ms / a.p99_ms
    );
    out
}

fn figures_json(f: &Figures) -> String {
    format!(
        "{{\"ops_per_s\":{},\"mib_per_s\":{},\"p50_ms\":{},\"p99_ms\":{},\"errors\":{}}}",
        number(f.ops_per_s),
        number(f.mib_per_s),
        number(f.p50_ms),
        number(f.p99_ms),
        f.errors
    )
}

/// The `--json` document of `--compare`: every round, the medians and the ratios.
pub fn compare_json(settings: &Settings, endpoints: &[&str; 2], runs: &[Round], started_unix: u64) -> String {
    let rounds: Vec<String> = runs
        .iter()
        .map(|r| {
            let secs = seconds(&r.total);
            format!(
                "{{\"endpoint\":{},\"round\":{},\"elapsed_s\":{},\"totals\":{}}}",
                string(endpoints[r.endpoint]),
                r.round,
                number(secs),
                op_json(&all_ops(&r.total), secs)
            )
        })
        .collect();
    let (a, b) = (medians(runs, 0), medians(runs, 1));
    format!(
        "{{\n\"tool\":\"kaligon bench\",\n\"version\":{},\n\"started_unix\":{started_unix},\n\"config\":{{{}}},\n\
         \"endpoints\":[{},{}],\n\"rounds\":[\n{}\n],\n\"median\":[{},{}],\n\
         \"ratio\":{{\"ops_per_s\":{},\"mib_per_s\":{},\"p50\":{},\"p99\":{}}}\n}}\n",
        string(env!("CARGO_PKG_VERSION")),
        config_json(settings),
        string(endpoints[0]),
        string(endpoints[1]),
        rounds.join(",\n"),
        figures_json(&a),
        figures_json(&b),
        number(b.ops_per_s / a.ops_per_s),
        number(b.mib_per_s / a.mib_per_s),
        number(b.p50_ms / a.p50_ms),
        number(b.p99_ms / a.p99_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_of_rounds() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(vec![]).is_nan());
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(string("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\u0001é\"");
        assert_eq!(number(f64::NAN), "null");
        assert_eq!(number(1.23456), "1.235");
        assert_eq!(number(10.0), "10");
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(size_text(4096), "4 KiB");
        assert_eq!(size_text(64 << 20), "64 MiB");
        assert_eq!(size_text(100), "100 B");
        assert_eq!(size_text(1536 << 20), "1.50 GiB");
    }
}
