// The measuring itself: each part runs as its own process inside the network namespace it measures (started
// with `ip netns exec`), reports on the console in the lines scripts/bench-report reads, and appends what went
// wrong to the shared `failed` file.
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Paths and settings, from the environment as scripts/bench sets it.
struct Settings {
    static let ip = "/usr/sbin/ip"
    static let ipvsadm = "/usr/sbin/ipvsadm"
    static let nft = "/usr/sbin/nft"
    static let proxy = "/usr/local/bin/ipvs-proxy"
    static let apiServer = "/usr/local/bin/bench-api-server"
    /// A tmpfs, shared with the parts in other namespaces (`ip netns exec` keeps the same /run).
    static let work = "/run/bench"
    /// The endpoints' network is the cluster CIDR, as on a cluster (and the sync has nothing to warn about).
    static let node = ["--node-name", "bench-node", "--node-ip", "192.0.2.10", "--cluster-cidr", "10.128.0.0/9"]
    static let metrics = "127.0.0.1:10249"
    static let control = "127.0.0.1:6444"

    let time: String
    let data: String
    let sizes: String
    let runs: Int
    let yamlSizes: String
    let apiSize: Int
    let settle: String

    init(_ environment: [String: String] = ProcessInfo.processInfo.environment) {
        func value(_ name: String, _ fallback: String) -> String {
            environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? fallback
        }
        time = value("BENCH_TIME", "/usr/local/bin/gnutime")
        data = value("BENCH_DATA", "/bench/data")
        sizes = value("BENCH_SIZES", "1000,10000")
        runs = Int(value("BENCH_RUNS", "3")) ?? 3
        yamlSizes = value("BENCH_YAML_SIZE", "1000,10000")
        apiSize = Int(value("BENCH_API_SIZE", "10000")) ?? 0
        settle = value("BENCH_SETTLE", "3")
    }
}

/// One part of the benchmark at one size: times commands, reports them and checks what they left.
final class Bench {
    let settings: Settings
    /// The run (a number, or `yaml`, `kubectl`, `api`) and the number of Services, as reported.
    let run: String
    let n: Int
    let w = Settings.work
    let data: String

    /// The last timed command: wall time (ns), exit status, peak RSS (KiB).
    var ns: Int64 = 0
    var rc: Int32 = 0
    var rss = 0

    init(settings: Settings, run: String, n: Int) {
        self.settings = settings
        self.run = run
        self.n = n
        self.data = settings.data
    }

    func failed(_ text: String) { appendLine("\(w)/failed", text) }

    /// Runs a command under GNU time (for the peak RSS; busybox time reports it 4x too large) with stdout to
    /// `output` and stderr to `error`; sets `ns`, `rc` and `rss`.
    func timed(_ output: String, _ error: String, _ arguments: [String], input: String? = nil) {
        let rssFile = "\(w)/rss"
        let started = monotonicNanoseconds()
        rc = execute(
            [settings.time, "-f", "%M", "-o", rssFile] + arguments, input: input.map { .file($0) } ?? .inherit,
            output: .file(output), error: .file(error))
        ns = monotonicNanoseconds() - started
        rss = readLines(rssFile).last.flatMap { Int($0) } ?? 0
    }

    /// Reports the last timed command: an `@@BENCH` line and a progress line; its stderr when it failed or
    /// wrote some.
    func emit(_ step: String, _ label: String, _ errorFile: String, _ counters: [String] = []) {
        let extra = counters.joined(separator: " ")
        printLine("@@BENCH run=\(run) size=\(n) step=\(step) ns=\(ns) rc=\(rc) rss_kb=\(rss) \(extra)")
        say(
            "run \(run) N=\(n) \(label): \(Self.seconds(ns)) s, exit \(rc), peak RSS \(rss / 1024) MiB"
                + (extra.isEmpty ? "" : ", \(extra)"))
        let errors = readLines(errorFile)
        if rc != 0 {
            say("ERROR: \(label) exited with status \(rc); its stderr (first 30 lines):")
            for line in errors.prefix(30) { printLine("    \(line)") }
            failed("run \(run) N=\(n) \(step): exit status \(rc)")
        } else if !errors.isEmpty {
            say("\(label) wrote to stderr (first 10 lines):")
            for line in errors.prefix(10) { printLine("    \(line)") }
        }
    }

    static func seconds(_ ns: Int64) -> String {
        let millis = ns / 1_000_000 % 1000
        return "\(ns / 1_000_000_000)." + String(repeating: "0", count: millis < 10 ? 2 : millis < 100 ? 1 : 0)
            + "\(millis)"
    }

    func check(_ step: String, _ what: String, _ ok: Bool, _ detail: String = "") {
        if ok {
            printLine("@@CHECK run=\(run) size=\(n) step=\(step) result=PASS what=\(what)")
            say("run \(run) N=\(n) \(step): PASS (\(what))")
        } else {
            printLine("@@CHECK run=\(run) size=\(n) step=\(step) result=FAIL what=\(what)")
            say("run \(run) N=\(n) \(step): FAIL (\(what)) \(detail)")
            failed("run \(run) N=\(n) \(step): \(what) \(detail)")
        }
    }

    /// The kernel's table (`ipvsadm -Sn`, sorted) equals the expected rules (sorted).
    func checkTable(_ step: String, _ expectedFile: String) {
        let got = lines(capture([Settings.ipvsadm, "-Sn"]).output).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let want = readLines(expectedFile).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        if got == want {
            check(step, "ipvsadm-Sn=expected", true)
            return
        }
        check(step, "ipvsadm-Sn=expected", false, "(kernel: \(got.count) lines, expected: \(want.count) lines)")
        let gotSet = Set(got)
        let wantSet = Set(want)
        let differences = want.filter { !gotSet.contains($0) }.map { "-\($0)" } + got.filter { !wantSet.contains($0) }
            .map { "+\($0)" }
        for line in differences.prefix(12) { printLine("    \(line)") }
    }

    /// The counters of sync's JSON summary as key=value words, in the order of its fields.
    static func syncCounts(_ file: String) -> [String] {
        guard let data = FileManager.default.contents(atPath: file),
            let summary = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return [] }
        func int(_ value: Any?) -> Int { (value as? NSNumber)?.intValue ?? 0 }
        var words: [String] = []
        for (section, prefix, keys) in [
            ("virtualServers", "vs", ["added", "edited", "deleted"]),
            ("realServers", "rs", ["added", "edited", "deleted", "draining"]),
            ("addresses", "addr", ["bound", "unbound"]),
            ("nftables", "nft", ["elementsAdded", "elementsDeleted", "transactions"]),
        ] {
            guard let fields = summary[section] as? [String: Any] else { continue }
            for key in keys where fields[key] != nil { words.append("\(prefix)_\(key)=\(int(fields[key]))") }
        }
        if let writes = summary["writeOperations"] { words.append("writes=\(int(writes))") }
        if let failures = summary["failures"] as? [Any], failures.isEmpty { words.append("failures=0") }
        return words
    }

    /// What the netfilter half added to a sync's wall time, from its `--timings` lines: reading and planning the
    /// nftables tables, and waiting for the transaction after the IPVS batch (it runs alongside); and how long the
    /// transaction itself took, as nft_commit_ms.
    static func nftTimings(_ file: String) -> [String] {
        func milliseconds(_ line: Substring) -> Double {
            var value = line[(line.range(of: ": ", options: .backwards)?.upperBound ?? line.startIndex)...]
            for suffix in [" seconds", " second"] where value.hasSuffix(suffix) { value = value.dropLast(suffix.count) }
            return (Double(value) ?? 0) * 1000
        }
        var added = 0.0
        var commit = 0.0
        let phases = ["read nftables", "plan nftables", "wait for nftables", "check nftables"]
        for line in readLines(file) where line.hasPrefix("timing: ") {
            let rest = line.dropFirst("timing: ".count)
            if phases.contains(where: { rest.hasPrefix($0 + ":") }) { added += milliseconds(line) }
            if rest.hasPrefix("nftables commit") { commit = milliseconds(line) }
        }
        return ["nft_ms=\(Int(added))", "nft_commit_ms=\(Int(commit))"]
    }

    /// Leaves the lines of `file` that are not `--timings` lines in `to`; returns the value of the full decoder's
    /// line, if there is one.
    @discardableResult
    static func dropTimings(_ file: String, to: String) -> String? {
        var kept: [Substring] = []
        var fallbacks: String?
        for line in readLines(file) {
            if line.hasPrefix("timing: files decoded by the full decoder: ") {
                fallbacks = String(line.dropFirst("timing: files decoded by the full decoder: ".count))
            }
            if !line.hasPrefix("timing: ") { kept.append(line) }
        }
        writeText(to, kept.map { $0 + "\n" }.joined())
        return fallbacks
    }

    // MARK: - Step 1: the references

    func reference() {
        execute([Settings.ipvsadm, "-C"])
        timed("\(w)/ref.out", "\(w)/ref.err", [Settings.ipvsadm, "-R"], input: "\(data)/rules-\(n).txt")
        emit("ipvsadm-R", "1 ipvsadm -R", "\(w)/ref.err")
        let loaded = newlineCount(capture([Settings.ipvsadm, "-Sn"]).output)
        check("ipvsadm-R", "reference-loaded", loaded == n * 11, "(\(loaded) lines)")
        execute([Settings.ipvsadm, "-C"])
        // 1c: the set elements a sync adds to its nftables table, alone.
        timed("\(w)/nft.out", "\(w)/nft.err", [Settings.nft, "-f", "\(data)/nft-\(n).nft"])
        emit("nft-elements", "1c nft -f: the same set elements", "\(w)/nft.err")
        execute([Settings.nft, "delete", "table", "ip", "bench"])
    }

    // MARK: - Steps 2-7

    func ours(namespace: String) {
        let state = "\(w)/state-\(run)-\(n)"
        remove(state)
        let common = ["--netns", namespace, "--state-dir", state] + Settings.node + ["--output", "json"]
        let input = "\(data)/svc-\(n).json"

        timed("\(w)/s2.json", "\(w)/s2.err", [Settings.proxy, "sync", "-f", input] + common + ["--timings"])
        Self.dropTimings("\(w)/s2.err", to: "\(w)/s2.msg")
        emit(
            "sync-initial", "2 sync from empty", "\(w)/s2.msg",
            Self.syncCounts("\(w)/s2.json") + Self.nftTimings("\(w)/s2.err"))
        checkTable("sync-initial", "\(data)/rules-\(n).txt")
        let bound = newlineCount(
            capture([Settings.ip, "-4", "-o", "addr", "show", "dev", "kube-ipvs0"], error: .file("/dev/null")).output)
        check("sync-initial", "addresses-bound", bound == n, "(\(bound) on kube-ipvs0)")

        timed("\(w)/s3.json", "\(w)/s3.err", [Settings.proxy, "sync", "-f", input] + common + ["--timings"])
        Self.dropTimings("\(w)/s3.err", to: "\(w)/s3.msg")
        emit(
            "sync-unchanged", "3 sync, nothing changed", "\(w)/s3.msg",
            Self.syncCounts("\(w)/s3.json") + Self.nftTimings("\(w)/s3.err"))
        let rulesetBefore = capture([Settings.nft, "-a", "list", "table", "ip", "ipvs-proxy"]).output

        timed("\(w)/s4.json", "\(w)/s4.err", [Settings.proxy, "sync", "-f", "\(data)/svc-\(n)-changed.json"] + common)
        emit("sync-one-endpoint", "4 sync, one endpoint replaced", "\(w)/s4.err", Self.syncCounts("\(w)/s4.json"))
        checkTable("sync-one-endpoint", "\(data)/expected-\(n)-changed.txt")
        check(
            "sync-one-endpoint", "nftables-untouched",
            capture([Settings.nft, "-a", "list", "table", "ip", "ipvs-proxy"]).output == rulesetBefore,
            "(the table changed)")

        timed("\(w)/dump.txt", "\(w)/dump.err", [Settings.ipvsadm, "-Sn"])
        emit("ipvsadm-Sn", "5 ipvsadm -Sn", "\(w)/dump.err")
        let dumped = newlineCount(readText("\(w)/dump.txt"))
        check("ipvsadm-Sn", "dump-complete", dumped == n * 11, "(\(dumped) lines)")

        timed(
            "\(w)/show.json", "\(w)/show.err",
            [Settings.proxy, "show", "--output", "json", "--netns", namespace, "--state-dir", state])
        emit("show-json", "6 ipvs-proxy show --output json", "\(w)/show.err")
        let shown = readText("\(w)/show.json")
        let virtualServers = countLines(shown, containing: "\"scheduler\"")
        let realServers = countLines(shown, containing: "\"weight\"")
        check(
            "show-json", "show-complete", virtualServers == n && realServers == n * 10,
            "(\(virtualServers) virtual servers, \(realServers) real servers)")
        for file in ["s2.json", "s3.json", "s4.json", "dump.txt", "show.json"] { remove("\(w)/\(file)") }

        daemon(namespace: namespace, state: state)
    }

    /// The daemon's /metrics, scraped.
    var lastMetrics = ""

    /// Scrapes the daemon's /metrics into `lastMetrics` (left as it was when that fails).
    @discardableResult
    func scrape() -> Bool {
        guard let text = httpGet(Settings.metrics, "/metrics") else { return false }
        lastMetrics = text
        return true
    }

    func metric(_ name: String) -> Int { sumOfMetric(lastMetrics, name) }

    /// Step 7: the daemon watches a folder holding the input of step 4; once it has synced, the file is replaced
    /// by the original input (one endpoint back to its first address). Timed from the replacement until the
    /// daemon's sync counter moves; its metrics must show the change's own 2 operations, one read of that virtual
    /// server's real servers and no full dump of the table.
    func daemon(namespace: String, state: String) {
        let folder = "\(w)/watch"
        remove(folder)
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try? FileManager.default.copyItem(atPath: "\(data)/svc-\(n)-changed.json", toPath: "\(folder)/services.json")
        guard
            var daemon = start(
                [Settings.proxy, "run", "-f", folder, "--netns", namespace, "--state-dir", state] + Settings.node + [
                    "--sync-period", "1h", "--metrics-bind-address", Settings.metrics, "--healthz-bind-address", "",
                    "--log-level", "warning",
                ], output: .file("\(w)/d.log"), error: .toOutput)
        else {
            (ns, rc, rss) = (0, 1, 0)
            return emit("daemon-one-endpoint", "7 daemon, one endpoint changed", "\(w)/d.log")
        }
        var syncs = 0
        for _ in 0..<600 {  // up to 120 s for the first sync
            if scrape() { syncs = metric("ipvs_proxy_syncs_total") }
            if syncs > 0 || !daemon.isRunning() { break }
            pause(0.2)
        }
        if syncs == 0 {
            (ns, rc, rss) = (0, 1, 0)
            emit("daemon-one-endpoint", "7 daemon, one endpoint changed", "\(w)/d.log")
            daemon.signal(SIGTERM)
            _ = daemon.wait()
            return
        }
        let (dumps0, reads0, operations0) = (
            metric("ipvs_proxy_table_reads_total"), metric("ipvs_proxy_real_server_reads_total"),
            metric("ipvs_proxy_kernel_operations_total")
        )
        do {
            remove("\(folder)/.next")
            try FileManager.default.copyItem(atPath: "\(data)/svc-\(n).json", toPath: "\(folder)/.next")
        } catch {
            failed("cp")
        }
        let started = monotonicNanoseconds()
        rename("\(folder)/.next", "\(folder)/services.json")
        rc = 1
        var now = started
        while true {
            now = monotonicNanoseconds()
            if now - started > 120_000_000_000 { break }
            if scrape() && metric("ipvs_proxy_syncs_total") > syncs {
                rc = 0
                break
            }
            pause(0.05)
        }
        ns = now - started
        rss = statusKiB(daemon.pid, "VmHWM")
        pause(1)  // the daemon hands freed heap back to the kernel right after the sync
        let resident = statusKiB(daemon.pid, "VmRSS")
        if !scrape() { failed("run \(run) N=\(n) daemon: no metrics after the sync") }
        let dumps = metric("ipvs_proxy_table_reads_total") - dumps0
        let reads = metric("ipvs_proxy_real_server_reads_total") - reads0
        let operations = metric("ipvs_proxy_kernel_operations_total") - operations0
        daemon.signal(SIGTERM)
        let status = daemon.wait()
        if status != 0 {
            rc = status
            failed("run \(run) N=\(n) daemon: exit status \(status) after SIGTERM")
        }
        emit(
            "daemon-one-endpoint", "7 daemon, one endpoint changed", "\(w)/d.log",
            ["writes=\(operations)", "full_dumps=\(dumps)", "rs_reads=\(reads)", "resident_kb=\(resident)"])
        checkTable("daemon-one-endpoint", "\(data)/rules-\(n).txt")
        check(
            "daemon-one-endpoint", "only-its-own-operations", operations == 2 && dumps == 0 && reads == 1,
            "(\(operations) operations, \(dumps) full dumps, \(reads) real-server reads)")
    }

    // MARK: - Steps 1b and 2b

    func prebound(namespace: String) {
        let state = "\(w)/state-pre-\(run)-\(n)"
        remove(state)
        if execute([Settings.ip, "link", "add", "kube-ipvs0", "type", "dummy"]) == 0 {
            execute([Settings.ip, "link", "set", "kube-ipvs0", "up"])
        }
        var batch = ""
        for line in readLines("\(data)/rules-\(n).txt") where line.hasPrefix("-A -t ") {
            let address = line.dropFirst("-A -t ".count).prefix { $0.isNumber || $0 == "." }
            guard line.dropFirst("-A -t ".count + address.count).hasPrefix(":") else { continue }
            batch += "address add \(address)/32 dev kube-ipvs0\n"
        }
        writeText("\(w)/addresses", batch)
        timed("\(w)/pre.out", "\(w)/pre.err", [Settings.ip, "-batch", "\(w)/addresses"])
        emit("bind-addresses", "1b ip -batch: bind the N addresses", "\(w)/pre.err")
        timed(
            "\(w)/s2b.json", "\(w)/s2b.err",
            [Settings.proxy, "sync", "-f", "\(data)/svc-\(n).json", "--netns", namespace, "--state-dir", state]
                + Settings.node + ["--output", "json"])
        emit("sync-prebound", "2b sync from empty, addresses bound", "\(w)/s2b.err", Self.syncCounts("\(w)/s2b.json"))
        checkTable("sync-prebound", "\(data)/rules-\(n).txt")
        remove("\(w)/s2b.json")
        remove("\(w)/addresses")
    }

    // MARK: - kubectl's YAML and JSON

    /// kubectl's form of the input (yaml: svc-N.yaml; json: svc-N-kubectl.json), synced from empty and again
    /// unchanged; `--timings` says how many files the full decoder read (its lines are then dropped).
    func kubectl(form: String, namespace: String) {
        let file = form == "json" ? "\(data)/svc-\(n)-kubectl.json" : "\(data)/svc-\(n).yaml"
        let state = "\(w)/state-kubectl-\(form)"
        remove(state)
        for step in ["empty", "unchanged"] {
            timed(
                "\(w)/sk.json", "\(w)/sk.err",
                [Settings.proxy, "sync", "-f", file, "--netns", namespace, "--state-dir", state] + Settings.node
                    + ["--output", "json", "--timings"])
            let fallbacks = Self.dropTimings("\(w)/sk.err", to: "\(w)/sk.err")
            let name = "sync-kubectl-\(form)" + (step == "unchanged" ? "-unchanged" : "")
            emit(
                name, "sync of kubectl's \(form), \(step)", "\(w)/sk.err",
                Self.syncCounts("\(w)/sk.json") + ["fallbacks=\(fallbacks ?? "?")"])
            if step == "empty" { checkTable(name, "\(data)/rules-\(n).txt") }
        }
        remove("\(w)/sk.json")
        remove("\(w)/sk.err")
    }
}
